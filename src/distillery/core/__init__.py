"""The stage contract every stage depends on: errors, I/O, records, quarantine, params, the stage run, text keys.

Nothing in `core` imports from distillery's subpackages; they import from here.
"""
