"""Every prompt an LLM stage takes is accounted for: an output record, a quarantine entry, or a failed
request with its reason; the stage ends with one summary line and its gate counts failed and refused
requests. Real stage script, real engine, the test server over HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _inputs(gh, tmp_path: Path, n: int) -> Path:
    recs = [gh.sft(i, f"Explain topic {i} in two sentences.") for i in range(n)]
    return gh.write_records(tmp_path / "in" / "records.jsonl", recs).parent


def _distill(tmp_path: Path, inp: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts" / "distill.py"), "--params", "params.yaml",
                           "--input", str(inp), "--output", str(out)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)


def _summary(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith("distill: ") and " ok, " in ln]


def _metrics(out: Path) -> tuple[dict, dict]:
    return json.loads((out / "metrics.json").read_text()), json.loads((out / "metrics.details.json").read_text())


def _accounted(gh, out: Path) -> int:
    return len(gh.read_jsonl(out / "records.jsonl")) + len(gh.read_jsonl(out / "quarantine.jsonl"))


def test_teacher_down_without_failover_fails_the_rest_instead_of_skipping(gen_params, gh, tmp_path):
    gen_params(distill__teachers={"dead": 1.0}, distill__max_consecutive_failures=2, distill__sample=12,
               distill__batch_size=4)
    inp, out = _inputs(gh, tmp_path, 12), tmp_path / "out"
    r = _distill(tmp_path, inp, out)
    assert r.returncode == 3, r.stderr[-2000:]                      # 12 of 12 failed: over the 5% gate
    assert "Traceback" not in r.stderr
    assert _accounted(gh, out) == 12                                # every prompt: a record or a quarantine entry
    failed = gh.read_jsonl(out / "failed_requests.jsonl")
    reasons = sorted(f["error"] for f in failed)
    assert len(failed) == 12 and reasons.count("teacher_down") == 8 and reasons.count("connection") == 4
    (line,) = _summary(r.stderr)
    assert line.startswith("distill: 0 ok, 12 failed (teacher_down 8, connection 4), 0 refused by budget")
    assert "teachers down: dead" in line
    head, details = _metrics(out)
    assert head["failed"] == 12 and head["refused"] == 0 and head["records_in"] == 12
    assert details["llm"]["failed_by_reason"] == {"connection": 4, "teacher_down": 8}


def test_failures_reach_the_metrics_and_the_gate(gen_params, gh, tmp_path):
    rules = [{"match": r"topic [135] in", "status": 500}]
    gen_params(rules, distill__sample=10, distill__max_reject_rate=0.5)
    inp, out = _inputs(gh, tmp_path, 10), tmp_path / "out"
    r = _distill(tmp_path, inp, out)
    assert r.returncode == 0, r.stderr[-2000:]                      # 3 of 10 is under this stage's gate (50%)
    (line,) = _summary(r.stderr)
    assert line.startswith("distill: 7 ok, 3 failed (server_error 3), 0 refused by budget; spent $")
    head, details = _metrics(out)
    assert head["failed"] == 3 and head["refused"] == 0 and head["records_out"] == 7 and head["rejected"] == 3
    assert head["cost_usd"] > 0 and "cap_usd" not in head and details["cap_usd"] is None
    assert details["llm"]["failed_by_reason"] == {"server_error": 3}
    assert _accounted(gh, out) == 10

    gen_params(rules, distill__sample=10)                           # the project gate (5%): the same run fails
    r = _distill(tmp_path, inp, tmp_path / "out2")
    assert r.returncode == 3 and len(_summary(r.stderr)) == 1 and "teacher_failed" in r.stderr


def test_budget_stop_is_counted_refused_and_spend_stays_under_the_cap(gen_params, gh, server, tmp_path):
    cap = 0.01
    gen_params(distill__sample=30, llm__stage_max_usd={"distill": cap}, distill__max_reject_rate=1.0)
    inp, out = _inputs(gh, tmp_path, 30), tmp_path / "out"
    server.reset()
    r = _distill(tmp_path, inp, out)
    assert r.returncode == 0, r.stderr[-2000:]
    head, details = _metrics(out)
    ok = len(gh.read_jsonl(out / "records.jsonl"))
    assert 0 < ok < 30 and head["refused"] == 30 - ok and head["failed"] == 0
    assert head["cap_usd"] == cap and 0 < head["cost_usd"] <= cap
    assert len(server.requests()) == ok                             # refused requests were never sent
    failed = gh.read_jsonl(out / "failed_requests.jsonl")
    assert {f["error"] for f in failed} == {"budget_refused"} and len(failed) == 30 - ok
    (line,) = _summary(r.stderr)
    assert f"{30 - ok} refused by budget" in line and f"of ${cap:.4f} cap (llm.stage_max_usd.distill)" in line
    assert _accounted(gh, out) == 30


def test_failed_requests_file_describes_the_latest_run_only(gen_params, gh, tmp_path):
    gen_params([{"match": r"topic [246] in", "status": 500}], distill__sample=8, distill__max_reject_rate=1.0)
    inp, out = _inputs(gh, tmp_path, 8), tmp_path / "out"
    assert _distill(tmp_path, inp, out).returncode == 0
    assert len(gh.read_jsonl(out / "failed_requests.jsonl")) == 3
    gen_params(distill__sample=8, distill__max_reject_rate=1.0)   # the server is healthy again
    r = _distill(tmp_path, inp, out)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (out / "failed_requests.jsonl").read_text() == ""         # the rerun fixed them all
    assert len(gh.read_jsonl(out / "records.jsonl")) == 8
    assert _summary(r.stderr)[0].startswith("distill: 8 ok, 0 failed, 0 refused by budget")


def test_a_failure_resolved_by_failover_is_not_outstanding(gen_params, gh, tmp_path):
    gen_params(distill__teachers={"dead": 1.0}, distill__failover=["small"], distill__max_consecutive_failures=100,
               distill__sample=6)
    inp, out = _inputs(gh, tmp_path, 6), tmp_path / "out"
    r = _distill(tmp_path, inp, out)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (out / "failed_requests.jsonl").read_text() == ""
    assert len(gh.read_jsonl(out / "records.jsonl")) == 6
    head, _ = _metrics(out)
    assert head["failed"] == 0 and head["records_in"] == 6
