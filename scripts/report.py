"""Shim: the report stage lives in distillery.commands.report (same as `distillery report`)."""
from distillery.commands.report import main

main(prog_name="distillery report")
