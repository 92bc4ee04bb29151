"""Shim: the completion stage lives in distillery.commands.completion (same as `distillery completion`)."""
from distillery.commands.completion import main

main(prog_name="distillery completion")
