"""Shim: the dedup stage lives in distillery.commands.dedup (same as `distillery dedup`)."""
from distillery.commands.dedup import main

main(prog_name="distillery dedup")
