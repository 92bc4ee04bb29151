"""Helpers for the ingest tests: run the real script in a temp dir, read its outputs."""

import json
from pathlib import Path

import pytest
import yaml


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture()
def ingest_cli(run_script, tmp_path):
    """Run scripts/ingest.py in tmp_path (tracking off); `params` (a dict) becomes --params."""

    def _run(*args, params: dict | None = None):
        extra = []
        if params is not None:
            p = tmp_path / "params.yaml"
            p.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
            extra = ["--params", str(p)]
        return run_script("ingest", *extra, *args, cwd=tmp_path,
                          env={"DISTILLERY_TRACKING": "0", "DISTILLERY_PROGRESS": "0"}, timeout=120)

    return _run


def one_line_error(proc) -> str:
    """The error a user sees: exactly one non-log line on stderr, no traceback."""
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and " INFO " not in ln]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


@pytest.fixture(scope="session")
def jsonl():
    return read_jsonl


@pytest.fixture(scope="session")
def one_line():
    return one_line_error


@pytest.fixture(scope="session")
def shipped_ingest(repo_root):
    """The `ingest:` section of the shipped params.yaml, validated, with paths made absolute."""
    from distillery.sources.config import IngestParams

    data = yaml.safe_load((repo_root / "params.yaml").read_text(encoding="utf-8"))["ingest"]
    for spec in data["sources"].values():
        spec["path"] = str(repo_root / spec["path"])
    return IngestParams.model_validate(data)


@pytest.fixture(scope="session")
def ingested(shipped_ingest, tmp_path_factory):
    """Each shipped source ingested once (library call), keyed by source name."""
    from distillery.sources.ingest import ingest_source

    out = {}
    root = tmp_path_factory.mktemp("shipped")
    for name, spec in shipped_ingest.sources.items():
        res = ingest_source(name, spec, shipped_ingest.defaults, root / name, max_row_bytes=4 << 20)
        out[name] = {"result": res, "records": read_jsonl(root / name / "records.jsonl"),
                     "quarantine": read_jsonl(root / name / "quarantine.jsonl"), "dir": root / name}
    return out


@pytest.fixture()
def ingest_inproc(repo_root, tmp_path, monkeypatch):
    """The ingest click command run in-process (for cheap checks of params errors)."""
    from click.testing import CliRunner

    from distillery.commands import ingest as mod
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DISTILLERY_TRACKING", "0")

    def _run(*args, params: dict | None = None):
        extra = []
        if params is not None:
            (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
            extra = ["--params", "params.yaml"]
        return CliRunner().invoke(mod.main, [*extra, *map(str, args)])

    return _run
