"""Judged preference sets (two answers + a judgment) ingested by params alone: the judgment decides
which answer is chosen, ties are quarantined as `preference_tie`, the judgment is kept in the record.

Fixtures are real rows (tests/ingest/data/README.md): HH harmless pairs with their answers put in a
fixed order, and Open-Assistant sibling replies with their human ranks and thumbs-up counts.
"""

import csv
import json
from pathlib import Path

from distillery.core.io import read_stage_metrics
from distillery.core.records import check_record
from distillery.core.text import normalize_text

DATA = Path(__file__).parent / "data"


def _rows(name: str) -> list[dict]:
    if name.endswith(".csv"):
        with open(DATA / name, newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    return [json.loads(line) for line in (DATA / name).read_text(encoding="utf-8").splitlines()]


def _source(path: str, fields: dict, preference: dict, **extra) -> dict:
    return {"ingest": {"sources": {"judged": {"path": str(DATA / path), "adapter": "mapping", "fields": fields,
                                               "preference": preference, "license": "test", **extra}}}}


def _strict(path: Path) -> list[dict]:
    """Lines parsed as strict JSON (no NaN/Infinity), as every reader of the outputs should be able to."""
    def refuse(c):
        raise ValueError(c)

    return [json.loads(line, parse_constant=refuse) for line in path.read_text(encoding="utf-8").splitlines()]


def test_threshold_on_a_number_decides_the_direction(ingest_cli, tmp_path):
    pref = {"first": "response_1", "second": "response_2", "rule": "threshold", "field": "preference",
            "threshold": 1.5, "above": "second"}
    params = _source("hh_judged.jsonl", {"prompt": "context", "id": "pair_id"}, pref, max_reject_rate=0.25)
    p = ingest_cli("--source", "judged", "--output", "out", params=params)
    assert p.returncode == 0, p.stderr
    recs, rows = _strict(tmp_path / "out/records.jsonl"), {r["pair_id"]: r for r in _rows("hh_judged.jsonl")}
    assert len(recs) == 10
    for rec in recs:
        row = rows[rec["source"]["upstream_id"]]
        win, lose = ("response_1", "response_2") if row["preference"] < 1.5 else ("response_2", "response_1")
        assert rec["kind"] == "preference" and check_record(rec) is None
        assert rec["chosen"]["content"] == normalize_text(row[win])
        assert rec["rejected"]["content"] == normalize_text(row[lose])
        assert [m["content"] for m in rec["messages"]] == [normalize_text(t["content"]) for t in row["context"]]
        assert rec["labels"]["preference"] == {"rule": "threshold", "field": "preference", "value": row["preference"],
                                               "threshold": 1.5, "above": "second",
                                               "winner": "first" if win == "response_1" else "second"}
    # half of the pairs have the better answer second: a fixed `chosen: response_1` would invert them
    assert sum(r["labels"]["preference"]["winner"] == "second" for r in recs) == 5
    q = _strict(tmp_path / "out/quarantine.jsonl")
    assert [(e["reason"], e["line"]) for e in q] == [("preference_tie", 11), ("preference_tie", 12),
                                                     ("non_finite_number", 13)]
    assert q[2]["record"]["preference"] == "NaN"           # the evidence, as strict JSON
    m = read_stage_metrics(tmp_path / "out/metrics.json")
    assert (m["records_in"], m["records_out"]) == (13, 10)
    assert m["rejects_by_reason"] == {"non_finite_number": 1, "preference_tie": 2}


def test_label_field_with_tie_and_unknown_values(ingest_cli, tmp_path):
    pref = {"first": "answer_a", "second": "answer_b", "rule": "label", "field": "verdict",
            "first_wins": ["A"], "second_wins": ["b"], "ties": ["C"]}     # labels match case-insensitively
    params = _source("hh_verdicts.csv", {"prompt": "question", "id": "question_id"}, pref, max_reject_rate=0.2)
    p = ingest_cli("--source", "judged", "--output", "out", params=params)
    assert p.returncode == 0, p.stderr
    recs, rows = _strict(tmp_path / "out/records.jsonl"), {r["question_id"]: r for r in _rows("hh_verdicts.csv")}
    assert len(recs) == 10
    for rec in recs:
        row = rows[rec["source"]["upstream_id"]]
        win, lose = ("answer_a", "answer_b") if row["verdict"] == "A" else ("answer_b", "answer_a")
        assert (rec["chosen"]["content"], rec["rejected"]["content"]) == (normalize_text(row[win]),
                                                                        normalize_text(row[lose]))
        assert rec["messages"] == [{"role": "user", "content": normalize_text(row["question"])}]
        assert rec["labels"]["preference"] == {"rule": "label", "field": "verdict", "value": row["verdict"],
                                               "winner": "first" if row["verdict"] == "A" else "second"}
    q = _strict(tmp_path / "out/quarantine.jsonl")
    assert [e["reason"] for e in q] == ["preference_tie", "preference_unknown_label"]
    assert "'error'" in q[1]["detail"] and "first_wins" in q[1]["detail"]
    m = read_stage_metrics(tmp_path / "out/metrics.json")
    assert m["rejects_by_reason"] == {"preference_tie": 1, "preference_unknown_label": 1}


def test_rank_fields_lower_wins_and_score_fields_higher_wins(ingest_cli, tmp_path):
    rows = {r["parent_id"]: r for r in _rows("oasst_ranked_pairs.jsonl")}
    fields = {"prompt": "prompt", "id": "parent_id"}
    pref = {"first": "reply_a", "second": "reply_b", "rule": "lower", "score_fields": ["rank_a", "rank_b"]}
    p = ingest_cli("--source", "judged", "--output", "ranks", params=_source("oasst_ranked_pairs.jsonl", fields, pref))
    assert p.returncode == 0, p.stderr
    recs = _strict(tmp_path / "ranks/records.jsonl")
    assert len(recs) == len(rows) == 11
    for rec in recs:
        row = rows[rec["source"]["upstream_id"]]
        best = "reply_a" if row["rank_a"] < row["rank_b"] else "reply_b"
        assert rec["chosen"]["content"] == normalize_text(row[best]) and check_record(rec) is None
        assert rec["labels"]["preference"]["value"] == [row["rank_a"], row["rank_b"]]
        assert rec["scores"]["preference"] == {"mode": "lower", "margin": 1, "chosen": 0, "rejected": 1}
    assert sum(r["labels"]["preference"]["winner"] == "second" for r in recs) == 2

    pref = {"first": "reply_a", "second": "reply_b", "rule": "higher", "score_fields": ["thumbs_up_a", "thumbs_up_b"]}
    p = ingest_cli("--source", "judged", "--output", "thumbs", "--max-reject-rate", "0.1",
                   params=_source("oasst_ranked_pairs.jsonl", fields, pref))
    assert p.returncode == 0, p.stderr
    recs = _strict(tmp_path / "thumbs/records.jsonl")
    assert len(recs) == 10
    for rec in recs:
        s = rec["scores"]["preference"]
        assert s["mode"] == "higher" and s["chosen"] > s["rejected"] and s["margin"] == s["chosen"] - s["rejected"]
    (q,) = _strict(tmp_path / "thumbs/quarantine.jsonl")
    assert q["reason"] == "preference_tie" and q["line"] == 11 and "thumbs_up_a=0" in q["detail"]


def test_bad_judgments_are_quarantined_by_reason(ingest_cli, tmp_path):
    base = {"q": "Name a prime number.", "a": "Seven.", "b": "Nine."}
    rows = [{**base, "score": 0.9}, {**base, "score": "0.2"},            # CSV-style numeric text is a number
            {**base}, {**base, "score": "high"}, {**base, "score": True}, {**base, "score": [1]},
            {**base, "score": 0.5}, {**base, "score": 0.55}]
    lines = [json.dumps(r) for r in rows] + ['{"q": "x?", "a": "y.", "b": "z.", "score": Infinity}']
    (tmp_path / "s.jsonl").write_text("\n".join(lines) + "\n")
    pref = {"first": "a", "second": "b", "rule": "threshold", "field": "score", "threshold": 0.5, "above": "first",
            "margin": 0.1}
    params = {"ingest": {"sources": {"s": {"path": "s.jsonl", "adapter": "mapping", "fields": {"prompt": "q"},
                                           "preference": pref, "max_reject_rate": 1}}}}
    p = ingest_cli("--source", "s", "--output", "out", params=params)
    assert p.returncode == 0, p.stderr
    assert [r["chosen"]["content"] for r in _strict(tmp_path / "out/records.jsonl")] == ["Seven.", "Nine."]
    assert [e["reason"] for e in _strict(tmp_path / "out/quarantine.jsonl")] == [
        "missing_field", "wrong_type", "wrong_type", "wrong_type", "preference_tie", "preference_tie",
        "non_finite_number"]


def test_preference_params_mistakes_name_the_key(ingest_inproc, tmp_path):
    (tmp_path / "a.jsonl").write_text("{}\n")
    two = {"first": "a", "second": "b"}
    cases = [
        ({"adapter": "alpaca", "preference": {**two, "rule": "higher", "score_fields": ["x", "y"]}},
         "ingest.sources.a.preference: needs adapter: mapping"),
        ({"preference": {**two, "rule": "threshold", "field": "p"}},
         "ingest.sources.a.preference.threshold: required by rule 'threshold'"),
        ({"preference": {**two, "rule": "label", "field": "p", "first_wins": ["A"], "second_wins": ["a"]}},
         "ingest.sources.a.preference.second_wins: 'a' is also in first_wins"),
        ({"preference": {**two, "rule": "higher", "score_fields": ["x"]}},
         "ingest.sources.a.preference.score_fields: give two fields"),
        ({"preference": {**two, "rule": "lower", "score_fields": ["x", "y"], "threshold": 1}},
         "ingest.sources.a.preference.threshold: not used by rule 'lower'"),
        ({"preference": {**two, "rule": "best"}}, "ingest.sources.a.preference.rule"),
        ({"fields": {"chosen": "a", "rejected": "b"},
          "preference": {**two, "rule": "higher", "score_fields": ["x", "y"]}},
         "ingest.sources.a.preference: replaces fields.chosen/rejected"),
    ]
    for spec, expected in cases:
        src = {"path": "a.jsonl", "adapter": "mapping", **spec}
        r = ingest_inproc("--source", "a", "--output", "out", params={"ingest": {"sources": {"a": src}}})
        assert r.exit_code == 2 and expected in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_label_values_match_across_json_and_csv_types():
    """PKU-SafeRLHF-style `better_response_id: 0/1`, SHP-style `labels: 1/0`, booleans, letters in any case."""
    from distillery.sources.config import PreferenceRule

    rule = PreferenceRule(first="a", second="b", rule="label", field="w", first_wins=[0, "A", True],
                          second_wins=[1, "b"], ties=["Tie"])
    got = [rule.outcome(v) for v in (0, "0", 0.0, " a ", True, "true", 1, "1.0", "B", "TIE", "c", 2, False)]
    assert got == ["first"] * 6 + ["second"] * 3 + ["tie", None, None, None]
