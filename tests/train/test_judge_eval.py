"""judge_eval against a scripted OpenAI-compatible judge whose answers are known: agreement with the
human label, its interval, swap consistency, tie and parse rates, the flag; run as the real stage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distillery.testing.testserver import TestServer


def _pref(i: int, question: str, chosen: str, rejected: str) -> dict:
    return {"id": f"p{i}", "kind": "preference", "messages": [{"role": "user", "content": question}],
            "chosen": {"role": "assistant", "content": chosen}, "rejected": {"role": "assistant", "content": rejected}}


# The judge picks whichever answer says GOOD (in either position), says A whenever the request has
# BIASQ (position bias), "tie" on TIEQ, and babbles on BABBLEQ (no verdict, even when re-asked).
RULES = [{"match": r"BABBLEQ|could not be parsed", "response": "I like both of them a lot."},
         {"match": r"BIASQ", "response": '{"winner": "A"}'},
         {"match": r"TIEQ", "response": '{"winner": "tie"}'},
         {"match": r"ANSWER A:\nGOOD", "response": '{"winner": "A"}'},
         {"match": r"ANSWER B:\nGOOD", "response": '{"winner": "B"}'}]


def _sets(root: Path) -> dict[str, Path]:
    hh = [_pref(i, f"Question {i}?", f"GOOD answer {i}", f"meh answer {i}") for i in range(6)]       # agrees
    hh += [_pref(10 + i, f"Question {10 + i}?", f"meh answer {i}", f"GOOD answer {i}") for i in range(2)]  # disagrees
    hh += [_pref(20, "BIASQ one?", "GOOD x", "meh y"), _pref(21, "TIEQ two?", "GOOD x", "meh y")]
    oasst = [_pref(30 + i, f"Ask {i}?", f"GOOD reply {i}", f"meh reply {i}") for i in range(3)]
    oasst += [_pref(40, "BABBLEQ?", "GOOD", "meh")]
    lines = [json.dumps(r) for r in oasst] + ["{not json", json.dumps({"id": "s1", "kind": "sft", "messages": []}),
                                              json.dumps({**_pref(50, "q?", "a", "b"), "messages": []})]
    paths = {"hh": root / "hh.jsonl", "oasst": root / "oasst.jsonl"}
    paths["hh"].write_text("".join(json.dumps(r) + "\n" for r in hh))
    paths["oasst"].write_text("\n".join(lines) + "\n")
    return paths


def _params(root: Path, url: str, paths: dict[str, Path], min_agreement: float = 0.6) -> Path:
    f = root / "params.yaml"
    f.write_text(json.dumps({
        "project": {"seed": 3, "max_reject_rate": 0.5},
        "tracking": {"enabled": False},
        "llm": {"cache_path": str(root / "cache.sqlite"), "progress": False, "default_teacher": "judge",
                "teachers": {"judge": {"provider": "openai", "base_url": url, "model": "judge-1", "max_retries": 0,
                                       "gen": {"temperature": 0.0, "max_tokens": 16}}}},
        "score": {"judge": {"teachers": ["judge"], "guided": False, "parse_retries": 1}},
        "judge_eval": {"judges": ["judge"], "set_paths": {k: str(v) for k, v in paths.items()},
                       "sets": ["hh", "oasst"], "sample": 50, "min_agreement": min_agreement, "n_boot": 500}}))
    return f


def test_judge_eval_measures_agreement_swap_consistency_and_flags(run_script, tmp_path):
    paths = _sets(tmp_path)
    out, metrics = tmp_path / "out", tmp_path / "metrics" / "judge_eval.json"
    with TestServer(latency_ms=0, rules=RULES) as srv:
        p = run_script("judge_eval", "--params", _params(tmp_path, srv.url, paths), "--output", out,
                       "--metrics", metrics, cwd=tmp_path)
        sent = srv.requests()
    assert p.returncode == 0, p.stderr[-3000:]
    m = json.loads(metrics.read_text())
    hh = json.loads((out / "summary.json").read_text())["results"]["judge"]["hh"]
    # hh: 6 agree (1), 2 consistently disagree (0), 1 position-biased (0.5), 1 tie (0.5) -> 7/10
    assert (hh["pairs"], hh["judged"]) == (10, 10)
    assert hh["agreement"] == pytest.approx(0.7) and hh["strict_agreement"] == pytest.approx(0.6)
    assert hh["swap_consistency"] == pytest.approx(0.9) and hh["tie_rate"] == pytest.approx(0.1)
    assert hh["parse_rate"] == 1.0 and hh["flagged"] == 0
    lo, hi = hh["agreement_ci"]
    assert 0.3 < lo < 0.7 < hi <= 1.0
    # oasst: 3 agree; the babbling pair has no verdict (re-asked once per order) and is not judged
    oa = json.loads((out / "summary.json").read_text())["results"]["judge"]["oasst"]
    assert (oa["pairs"], oa["judged"], oa["agreement"]) == (4, 3, 1.0)
    assert oa["parse_rate"] == pytest.approx(6 / 8)
    # both orders were asked for every pair (+ one re-ask per order of the babbling pair)
    assert len(sent) == 2 * 14 + 2
    # flat headline, per judge and set, and the bad labelled lines are quarantined with a reason
    assert m["judge.hh.agreement"] == pytest.approx(0.7) and m["judge.hh.n"] == 10
    assert m["judge.oasst.swap_consistency"] == 1.0 and m["flagged"] == 0
    reasons = [json.loads(x)["reason"] for x in (out / "quarantine.jsonl").read_text().splitlines()]
    assert reasons == ["malformed_json", "empty_conversation"]
    assert "judge" in p.stdout and "agreement" in p.stdout


def test_a_judge_under_min_agreement_is_flagged(run_script, tmp_path):
    paths = _sets(tmp_path)
    out, metrics = tmp_path / "out", tmp_path / "metrics" / "judge_eval.json"
    with TestServer(latency_ms=0, rules=RULES) as srv:
        p = run_script("judge_eval", "--params", _params(tmp_path, srv.url, paths, min_agreement=0.8),
                       "--output", out, "--metrics", metrics, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    m = json.loads(metrics.read_text())
    assert m["judge.hh.flagged"] == 1 and m["judge.oasst.flagged"] == 0 and m["flagged"] == 1
    assert "FLAGGED" in p.stdout and "judge on hh" in p.stderr


def test_unknown_set_is_one_line_naming_the_key(run_script, tmp_path):
    paths = _sets(tmp_path)
    f = _params(tmp_path, "http://127.0.0.1:9/v1", paths)
    p = run_script("judge_eval", "--params", f, "--set", "judge_eval.sets=[hh, wizard]", "--output",
                   tmp_path / "out", cwd=tmp_path)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "judge_eval.sets" in p.stderr and "wizard" in p.stderr
