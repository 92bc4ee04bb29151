"""Shim: the validate stage lives in distillery.commands.validate (same as `distillery validate`)."""
from distillery.commands.validate import main

main(prog_name="distillery validate")
