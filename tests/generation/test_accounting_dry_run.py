"""--dry-run is an honest upper bound: it counts every request the real run sends, at any batch size,
and the real bill lands between 70% and 100% of its estimate. It leaves no temp folder behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ANSWER = " ".join(f"word{i}" for i in range(45))     # 45 completion tokens of a max_tokens=48 bound


def _distill(tmp_path: Path, inp: Path, out: Path, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts" / "distill.py"), "--params", "params.yaml",
                           "--input", str(inp), "--output", str(out), *extra],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)


@pytest.mark.parametrize("batch_size", [16, 5])
def test_dry_run_estimate_bounds_the_real_bill_at_any_batch_size(gen_params, gh, server, tmp_path, batch_size):
    gen_params([{"match": ".", "response": ANSWER}], distill__sample=40, distill__batch_size=batch_size,
               distill__gen__max_tokens=48, distill__max_consecutive_failures=2,
               distill__pilot={"size": 3, "teachers": ["big", "small"], "judge": False})
    recs = [gh.sft(i, f"Explain topic {i} in two sentences.") for i in range(40)]
    inp = gh.write_records(tmp_path / "in" / "records.jsonl", recs).parent
    out, tmp = tmp_path / "out", tmp_path / "tmp"
    tmp.mkdir()
    server.reset()
    dry = _distill(tmp_path, inp, out, "--dry-run", env={**os.environ, "TMPDIR": str(tmp)})
    assert dry.returncode == 0, dry.stderr[-2000:]
    est = json.loads(dry.stdout)
    assert server.requests() == [] and not out.exists()
    assert [p.name for p in tmp.iterdir() if p.name.startswith("distillery")] == []   # no dry-run folder left
    real = _distill(tmp_path, inp, out)
    assert real.returncode == 0, real.stderr[-2000:]
    sent = len(server.requests())
    assert est["totals"]["to_call"] == sent == 40 + 3               # every batch, plus the pilot's new teacher
    assert est["teachers"]["big"]["to_call"] == 40 and est["teachers"]["small"]["to_call"] == 3
    actual = json.loads((out / "metrics.json").read_text())["cost_usd"]
    estimate = est["totals"]["cost_usd"]
    assert estimate >= actual >= 0.7 * estimate, (estimate, actual)
