"""Shim: the multiturn stage lives in distillery.commands.multiturn (same as `distillery multiturn`)."""
from distillery.commands.multiturn import main

main(prog_name="distillery multiturn")
