"""Shim: the ingest stage lives in distillery.commands.ingest (same as `distillery ingest`)."""
from distillery.commands.ingest import main

main(prog_name="distillery ingest")
