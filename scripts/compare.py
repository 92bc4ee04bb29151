"""Shim: dataset A/B with intervals lives in distillery.commands.compare (same as `distillery compare`)."""
from distillery.commands.compare import main

main(prog_name="distillery compare")
