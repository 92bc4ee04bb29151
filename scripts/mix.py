"""Shim: the mix stage lives in distillery.commands.mix (same as `distillery mix`)."""
from distillery.commands.mix import main

main(prog_name="distillery mix")
