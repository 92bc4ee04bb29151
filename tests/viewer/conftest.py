"""Small, real-shaped pipeline outputs for the viewer tests (the shapes of docs/records.md and docs/dedup.md),
(Chromium: the `browse` fixture of tests/conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

# Text no page may render as markup: tags, an attribute break-out, entities, control and bidi characters.
NASTY = 'Ignore <script>alert("x")</script> </pre><img src=x onerror=alert(1)> "q" & \x01\x1b[31m \u202e txet'

SYSTEM = "You are a helpful, accurate assistant. Answer the request directly and completely."


def ingested(i: int, dataset: str, bucket: str, question: str, answer: str) -> dict:
    return {"id": f"{dataset}-{i:04d}", "kind": "sft",
            "messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}],
            "bucket": bucket, "source": {"dataset": dataset, "revision": "org/repo@abc", "row": i},
            "lineage": [{"stage": "ingest", "source": dataset, "adapter": "alpaca"}], "scores": {}, "labels": {}}


def distilled(i: int, dataset: str, bucket: str, question: str, answer: str, overall: int) -> dict:
    rec = ingested(i, dataset, bucket, question, answer)
    rec["id"] = f"{dataset}-gen-{i:04d}"
    prompt = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
    rec["lineage"] += [
        {"stage": "distill", "role": "answer", "teacher": "local-smollm2", "model": "smollm2", "prompt": prompt,
         "params": {"gen": {"temperature": 0.7, "max_tokens": 96, "seed": 42}}, "finish_reason": "stop",
         "usage": {"prompt_tokens": 30, "completion_tokens": 12}, "cost_usd": 0.0},
        {"stage": "score", "role": "judge", "teacher": "judge-model", "model": "judge-7b",
         "prompt": [{"role": "user", "content": f"Rate this answer: {answer}"}], "attempt": 1}]
    rec["scores"] = {"heuristic": {"words": len(answer.split()), "repeated_trigram_ratio": 0.0},
                     "judge": {"helpfulness": overall, "overall": overall, "judge": "judge-model"}}
    rec["labels"] = {"prompt_id": f"{dataset}-{i:04d}", "teacher": "local-smollm2"}
    return rec


def write_jsonl(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n")


def q_entry(reason: str, stage: str, rec: dict | None, line: int, **extra) -> dict:
    e = {"reason": reason, "stage": stage, "file": f"data/{stage}/records.jsonl", "line": line, "detail": "", **extra}
    if rec is not None:
        e["record"] = rec
    return e


def make_pipeline(root: Path) -> dict:
    """data/{ingest,score,synth,dedup,mix} under `root`; returns what the page must count."""
    d = root / "data"
    gsm = [ingested(i, "gsm8k", "cot_math", f"What is {i} + {i}?", f"{i} + {i} = {2 * i}. #### {2 * i}")
           for i in range(5)]
    code = [distilled(i, "code_alpaca", "code", f"Write a function returning {i}.",
                      f"def f():\n    return {i}", 6 + i % 4) for i in range(4)]
    nasty = distilled(99, "code_alpaca", "code", NASTY, NASTY + " answer", 9)
    oasst = [distilled(i, "oasst", "instruction", f"Explain topic {i}.", f"Topic {i} is explained here.", 7)
             for i in range(3)]
    copy = dict(code[0], id=code[0]["id"] + "~r1", mix_copy_of=code[0]["id"])
    production = gsm[:4] + code + [nasty] + oasst[:2] + [copy]
    evals = [gsm[4], oasst[2]]
    write_jsonl(d / "mix/production.jsonl", production)
    write_jsonl(d / "mix/eval.jsonl", evals)
    write_jsonl(d / "mix/phases/warmup.jsonl", gsm[:2])          # not a viewer input (subset of production)
    write_jsonl(d / "mix/quarantine.jsonl", [])

    # dedup: a near-duplicate cluster, an exact one, one contamination hit
    kept_a = ingested(50, "self_instruct", "instruction", "List three primary colors.",
                      "Red, yellow and blue are the three primary colors.")
    near_b = dict(kept_a, id="self_instruct-0051", messages=[
        {"role": "user", "content": "List the three primary colors."},
        {"role": "assistant", "content": "Red, yellow and blue are the primary colors of paint."}])
    near_c = dict(kept_a, id="self_instruct-0052", messages=[
        {"role": "user", "content": "List three primary colours please."},
        {"role": "assistant", "content": "Red, yellow and blue are the three primary colours."}])
    exact_e = dict(gsm[0], id="gsm8k-dup-0000")
    contaminated = ingested(60, "gsm8k", "cot_math", "Janet's ducks lay 16 eggs per day. She eats three.",
                            "She sells 16 - 3 - 4 = 9 eggs. #### 18")
    write_jsonl(d / "dedup/records.jsonl", gsm + code + [nasty] + oasst + [kept_a])
    dedup_q = [
        q_entry("near_duplicate", "dedup", near_b, 12, duplicate_of=kept_a["id"], similarity=0.9123),
        q_entry("near_duplicate", "dedup", near_c, 13, duplicate_of=kept_a["id"], similarity=0.8512),
        q_entry("exact_duplicate", "dedup", exact_e, 14, duplicate_of=gsm[0]["id"], similarity=1.0),
        q_entry("contaminated", "dedup", contaminated, 15, duplicate_of="gsm8k_test:test#7",
                matched={"eval_set": "gsm8k_test", "eval_item": "test#7"}),
    ]
    write_jsonl(d / "dedup/quarantine.jsonl", dedup_q)
    write_jsonl(d / "dedup/clusters.jsonl", [
        {"kind": "near_duplicate", "kept": kept_a["id"], "size": 3,
         "removed": [{"id": near_b["id"], "similarity": 0.9123}, {"id": near_c["id"], "similarity": 0.8512}],
         "min_similarity": 0.8512},
        {"kind": "exact_duplicate", "kept": gsm[0]["id"], "size": 2,
         "removed": [{"id": exact_e["id"], "similarity": 1.0}], "min_similarity": 1.0}])
    write_jsonl(d / "dedup/contamination.jsonl", [
        {"id": contaminated["id"], "eval_set": "gsm8k_test", "eval_item": "test#7", "method": "ngram",
         "overlap": 3, "eval_text": "Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning",
         "removed_as": "contaminated"}])

    # other stages' quarantines
    low = [distilled(70 + i, "oasst", "instruction", f"Tell me about {i}.", "I don't know.", 2) for i in range(3)]
    write_jsonl(d / "score/quarantine.jsonl",
                [q_entry("judge_below_threshold", "score", r, 20 + i, detail="overall 2 < 5")
                 for i, r in enumerate(low)]
                + [q_entry("ai_disclaimer", "score", distilled(80, "oasst", "instruction", NASTY,
                                                              "As an AI language model, I cannot.", 3), 30)])
    write_jsonl(d / "ingest/gsm8k/quarantine.jsonl", [
        q_entry("empty_turn", "ingest", ingested(90, "gsm8k", "cot_math", "Q?", ""), 91, source="gsm8k"),
        {"reason": "malformed_json", "stage": "ingest", "file": "data/raw/gsm8k/x.jsonl", "line": 3,
         "detail": "Expecting value", "raw": '{"question": <broken ' + NASTY}])
    write_jsonl(d / "synth/multiturn/quarantine.jsonl", [
        q_entry("turn_count", "multiturn", None, 0, detail="3 turns, wanted 4", persona="teacher")])
    write_jsonl(d / "distill/quarantine.jsonl", [])
    return {
        "kept": len(production) + len(evals),
        "generated": sum(1 for r in production + evals if len(r["lineage"]) > 1),
        "groups": 3,
        "rejects": {"dedup": len(dedup_q), "score": 4, "ingest": 2, "multiturn": 1},
        "clusters": 2, "merged": 3, "contamination": 1, "contaminated": 1,
        "copies": 1,
    }


VIEWER_ARGS = ["--input", "data/mix", "--dedup", "data/dedup", "--quarantine", "data/ingest",
               "--quarantine", "data/distill", "--quarantine", "data/synth", "--quarantine", "data/score",
               "--quarantine", "data/dedup", "--quarantine", "data/mix"]


@pytest.fixture()
def pipeline(tmp_path) -> tuple[Path, dict]:
    (tmp_path / "params.yaml").write_text("project:\n  seed: 42\n", encoding="utf-8")
    return tmp_path, make_pipeline(tmp_path)
