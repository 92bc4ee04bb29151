"""params.yaml is validated on load: every problem is one line naming the key or path."""

import subprocess
import sys
import textwrap

import pytest

from distillery.core.errors import ParamsError
from distillery.core.params import load_params


def write(tmp_path, text):
    p = tmp_path / "params.yaml"
    p.write_text(textwrap.dedent(text))
    return p


def test_defaults_without_a_params_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = load_params()
    assert p.project.seed == 42 and p.project.max_reject_rate == 0.05


def test_unknown_key_is_named(tmp_path):
    with pytest.raises(ParamsError, match=r"params.yaml: project.sede: unknown key"):
        load_params(write(tmp_path, "project:\n  sede: 1\n"))


def test_unknown_section_is_named(tmp_path):
    with pytest.raises(ParamsError, match=r"nosuchstage: unknown key"):
        load_params(write(tmp_path, "nosuchstage: {}\n"))


def test_wrong_type_is_named_with_the_value(tmp_path):
    with pytest.raises(ParamsError, match=r"project.seed: .*integer.*'abc'"):
        load_params(write(tmp_path, "project:\n  seed: abc\n"))


def test_out_of_range_is_named(tmp_path):
    with pytest.raises(ParamsError, match=r"project.max_reject_rate"):
        load_params(write(tmp_path, "project:\n  max_reject_rate: 3\n"))


def test_invalid_yaml_names_the_line(tmp_path):
    with pytest.raises(ParamsError, match=r"line 2"):
        load_params(write(tmp_path, "project:\n  seed: [1\n"))


def test_explicit_missing_params_file(tmp_path):
    with pytest.raises(ParamsError, match="params file not found"):
        load_params(tmp_path / "nope.yaml")


def test_overrides_beat_file_and_are_validated(tmp_path):
    p = write(tmp_path, "project:\n  seed: 1\n")
    assert load_params(p, ["project.seed=7"]).project.seed == 7
    with pytest.raises(ParamsError, match="project.seed"):
        load_params(p, ["project.seed=x"])
    with pytest.raises(ParamsError, match="expected section.key=value"):
        load_params(p, ["project.seed"])


def test_shipped_params_file_is_valid(repo_root):
    load_params(repo_root / "params.yaml")


def test_bad_params_stop_a_script_with_one_line_and_no_traceback(tmp_path, repo_root):
    """Any stage script: bad params -> exit code 2, a single `error:` line."""
    bad = write(tmp_path, "project:\n  seed: abc\n")
    code = ("import click\nfrom distillery.core.stage import stage_options, stage_run\n"
            "@click.command()\n@stage_options\ndef main(params_path, overrides):\n"
            "    with stage_run('project', params_path, overrides):\n        pass\nmain()\n")
    r = subprocess.run([sys.executable, "-c", code, "--params", str(bad)], capture_output=True, text=True)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines == [f"error: {bad}: project.seed: Input should be a valid integer, unable to parse string as an "
                     "integer (got 'abc')"]


def test_paths_are_checked_against_the_params_folder(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.jsonl").write_text("{}\n")
    p = write(tmp_path, "ingest:\n  sources:\n    x: {path: data/x.jsonl, adapter: alpaca}\n")
    monkeypatch.chdir("/")
    assert str(load_params(p).ingest.sources["x"].path) == "data/x.jsonl"
    p2 = write(tmp_path, "ingest:\n  sources:\n    x: {path: data/nope.jsonl, adapter: alpaca}\n")
    with pytest.raises(ParamsError, match=r"ingest.sources.x.path: path not found: data/nope.jsonl"):
        load_params(p2)

