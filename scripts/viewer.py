"""Shim: the viewer stage lives in distillery.commands.viewer (same as `distillery viewer`)."""
from distillery.commands.viewer import main

main(prog_name="distillery viewer")
