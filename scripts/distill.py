"""Shim: the distill stage lives in distillery.commands.distill (same as `distillery distill`)."""
from distillery.commands.distill import main

main(prog_name="distillery distill")
