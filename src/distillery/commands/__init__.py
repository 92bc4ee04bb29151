"""One click command per stage; `distillery <stage>` and `python scripts/<stage>.py` run the same one."""
