"""Shim: the judge_eval stage lives in distillery.commands.judge_eval (same as `distillery judge_eval`)."""
from distillery.commands.judge_eval import main

main(prog_name="distillery judge_eval")
