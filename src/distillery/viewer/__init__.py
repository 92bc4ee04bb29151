"""The offline data viewer: one self-contained HTML page showing what a run kept, rejected and merged.

`run.run_viewer` streams every input file once (collect), keeps a seeded, capped sample of examples
(sample) and writes the page (render). No network, no server: inline CSS and a few lines of JS.
"""
