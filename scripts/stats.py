"""Shim: the stats stage lives in distillery.commands.stats (same as `distillery stats`)."""
from distillery.commands.stats import main

main(prog_name="distillery stats")
