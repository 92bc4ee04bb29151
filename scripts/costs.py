"""Shim: the costs stage lives in distillery.commands.costs (same as `distillery costs`)."""
from distillery.commands.costs import main

main(prog_name="distillery costs")
