"""Shim: the scenarios stage lives in distillery.commands.scenarios (same as `distillery scenarios`)."""
from distillery.commands.scenarios import main

main(prog_name="distillery scenarios")
