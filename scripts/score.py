"""Shim: the score stage lives in distillery.commands.score (same as `distillery score`)."""
from distillery.commands.score import main

main(prog_name="distillery score")
