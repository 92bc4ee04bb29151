"""Shim: the prompt_dedup stage lives in distillery.commands.prompt_dedup (same as `distillery prompt_dedup`)."""
from distillery.commands.prompt_dedup import main

main(prog_name="distillery prompt_dedup")
