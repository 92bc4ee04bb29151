"""The bad-record corpus through every stage script that reads records and calls a teacher (against the
scripted test server): no traceback, and every bad line is quarantined with its reason and line."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .conftest import KEY_ENV

CORPUS = Path(__file__).resolve().parents[1] / "data" / "bad_records.jsonl"
EXPECTED = {int(k): v for k, v in json.loads(CORPUS.with_name("bad_records.expected.json").read_text()).items()}
BAD = {line: reason for line, reason in EXPECTED.items() if reason != "ok"}


def test_bad_records_through_llm_stages(gen_params, tmp_path, run_script):
    gen_params(rules=[{"match": "", "response": "A fine answer of several words for the question asked."}])
    env = {KEY_ENV: "sk-test-not-a-real-key"}
    common = ["--params", "params.yaml", "--set", "project.max_reject_rate=1.0"]
    runs = {
        "ingest": ["--input", CORPUS, "--adapter", "record", "--name", "corpus"],
        "distill": ["--input", CORPUS, "--sample", "0"],
        "completion": ["--input", CORPUS, "--sample", "0"],
        "preferences": ["--input", CORPUS],
        "score": ["--input", CORPUS],
    }

    def go(item):
        stage, args = item
        return run_script(stage, *common, *args, "--output", tmp_path / stage, cwd=tmp_path, env=env)

    with ThreadPoolExecutor(3) as pool:
        done = dict(zip(runs, pool.map(go, runs.items())))
    for stage, r in done.items():
        assert "Traceback" not in r.stderr, (stage, r.stderr[-3000:])
        assert r.returncode == 0, (stage, r.stderr[-2000:])
        q = [json.loads(x) for x in (tmp_path / stage / "quarantine.jsonl").read_text().splitlines()]
        by_line = {e["line"]: e["reason"] for e in q if e.get("line") is not None and e.get("file", "").endswith(
            "bad_records.jsonl")}
        if stage == "ingest":   # ingest adapts rows (drops unknown fields, maps roles): each line kept or quarantined
            kept = [json.loads(x)["source"]["line"] for x in (tmp_path / stage / "records.jsonl").read_text().splitlines()]
            assert sorted(kept + list(by_line)) == sorted(EXPECTED), (kept, by_line)
            assert set(by_line) >= {line for line, reason in BAD.items() if reason in ("malformed_json", "not_an_object")}
            continue
        for line, reason in BAD.items():
            assert by_line.get(line) == reason, (stage, line, by_line.get(line), reason)
