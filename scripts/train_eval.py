"""Shim: the train_eval stage lives in distillery.commands.train_eval (same as `distillery train_eval`)."""
from distillery.commands.train_eval import main

main(prog_name="distillery train_eval")
