"""Shim: the preferences stage lives in distillery.commands.preferences (same as `distillery preferences`)."""
from distillery.commands.preferences import main

main(prog_name="distillery preferences")
