"""Test-only code: the OpenAI-compatible test server and reference implementations.

No stage imports from here, so editing it reruns nothing under `dvc repro`.
"""
