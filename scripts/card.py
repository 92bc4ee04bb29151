"""Shim: the card stage lives in distillery.commands.card (same as `distillery card`)."""
from distillery.commands.card import main

main(prog_name="distillery card")
