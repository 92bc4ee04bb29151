"""Shim: the export stage lives in distillery.commands.export (same as `distillery export`)."""
from distillery.commands.export import main

main(prog_name="distillery export")
