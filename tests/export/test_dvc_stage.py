"""The export and card blocks of dvc.yaml declare exactly what the scripts write, and DVC runs them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from distillery.export.config import ExportParams
from distillery.export.run import run_export

from .conftest import good_records, write_lines


def stage(repo_root: Path, name: str) -> dict:
    return yaml.safe_load((repo_root / "dvc.yaml").read_text())["stages"][name]


def out_paths(block: dict) -> set[str]:
    return {o if isinstance(o, str) else next(iter(o)) for o in block.get("outs", [])}


def test_declared_outs_match_what_export_writes(repo_root, mix_dir, tmp_path):
    block = stage(repo_root, "export")
    assert "--input data/mix --output data/export" in block["cmd"]
    out = tmp_path / "data" / "export"
    run_export([str(mix_dir)], out, ExportParams(), max_line_bytes=1 << 22)
    written = {f"data/export/{p.name}" for p in out.iterdir()}
    declared = out_paths(block)
    assert written == {o for o in declared if o.startswith("data/export/")}, \
        "every file/folder written is a declared out, and vice versa"
    # beside them: the stage's details file (breakdowns; an out, not a metric)
    assert declared - written == {"metrics/export.details.json"}
    assert "data/export/README.md" in out_paths(stage(repo_root, "card"))
    assert [m if isinstance(m, str) else next(iter(m)) for m in block["metrics"]] == ["metrics/export.json"]
    # the export params DVC watches exist in the model (card texts do not rerun the export, nor does the
    # worker count: the bundle is the same bytes whatever it is, test_bundle checks)
    fields = set(ExportParams.model_fields) - {"card", "workers"}
    assert fields == {p.removeprefix("export.") for p in block["params"] if p.startswith("export.")}


@pytest.mark.slow
def test_dvc_repro_runs_export_and_card(repo_root, tmp_path):
    """`dvc repro -s export` and `-s card` in a copy of the project: outputs appear, a rerun does nothing."""
    proj = tmp_path / "proj"
    proj.mkdir()
    for f in ("dvc.yaml", "params.yaml"):
        shutil.copy(repo_root / f, proj / f)
    for d in ("scripts", "src"):
        shutil.copytree(repo_root / d, proj / d, ignore=shutil.ignore_patterns("__pycache__"))
    (proj / "data").mkdir()
    os.symlink(repo_root / "data" / "raw", proj / "data" / "raw")  # params ingest.sources paths must exist
    recs = good_records()
    write_lines(proj / "data/mix/production.jsonl", [r | {"id": f"{r['id']}-{i}"} for i in range(5) for r in recs])
    write_lines(proj / "data/mix/eval.jsonl", recs[:2])
    write_lines(proj / "data/mix/phases/calibration.jsonl", recs[:1])
    (proj / "metrics").mkdir()
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", DISTILLERY_TRACKING="0",
               DVC_NO_ANALYTICS="1")
    dvc = [str(Path(sys.executable).parent / "dvc")]

    def run(*args):
        r = subprocess.run(dvc + list(args), cwd=proj, env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        return r.stdout

    run("init", "--no-scm", "-q")
    run("repro", "-s", "export")
    # the card depends on every stage's metrics files: the ones no stage wrote here are empty ("not run")
    for dep in stage(proj, "card")["deps"]:
        dep = dep if isinstance(dep, str) else next(iter(dep))
        if dep.startswith("metrics/") and not (proj / dep).exists():
            (proj / dep).parent.mkdir(parents=True, exist_ok=True)
            (proj / dep).write_text("{}")
    run("repro", "-s", "card")
    assert (proj / "data/export/sft/messages.jsonl").exists()
    # params.yaml asks for the default formats only
    assert sorted(p.name for p in (proj / "data/export/sft").iterdir()) == ["messages.jsonl"]
    assert sorted(p.name for p in (proj / "data/export/dpo").iterdir()) == ["trl.jsonl"]
    assert (proj / "data/export/phases/calibration/dpo/trl.jsonl").exists()
    card = (proj / "data/export/README.md").read_text()
    assert "| export | 23 | 23 | 0 | - |" in card and "| `eval/sft/messages.jsonl` | eval | 1 |" in card
    again = run("repro", "-s", "export")
    assert "Running stage" not in again and "didn't change, skipping" in again, again
