"""Shim: the prepare_model stage lives in distillery.commands.prepare_model (same as `distillery prepare_model`)."""
from distillery.commands.prepare_model import main

main(prog_name="distillery prepare_model")
