"""Small, learnable train_eval inputs built in tmp (arithmetic Q&A in the record shape of docs/records.md)."""

import gzip
import json
import random
from pathlib import Path

import pytest


def _sft(i: int, a: int, b: int) -> dict:
    return {"id": f"sft{i}", "kind": "sft", "bucket": "cot_math", "source": {"dataset": "t", "row": i},
            "messages": [{"role": "user", "content": f"What is {a} plus {b}?"},
                         {"role": "assistant", "content": f"{a} + {b} = {a + b}. The answer is {a + b}."}]}


def _pref(i: int, a: int, b: int) -> dict:
    return {"id": f"pref{i}", "kind": "preference", "bucket": "cot_math", "source": {"dataset": "t", "row": i},
            "messages": [{"role": "user", "content": f"What is {a} plus {b}?"}],
            "chosen": {"role": "assistant", "content": f"{a} + {b} = {a + b}."},
            "rejected": {"role": "assistant", "content": f"I do not know, maybe {a * b + 7}?"}}


def _write(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
    return path


def build_inputs(root: Path, n_sft: int = 48, n_pref: int = 16, n_eval: int = 12) -> dict:
    rng = random.Random(0)
    nums = [(rng.randint(2, 60), rng.randint(2, 60)) for _ in range(n_sft + n_pref + 2 * n_eval)]
    prod = [_sft(i, *nums[i]) for i in range(n_sft)] + [_pref(i, *nums[n_sft + i]) for i in range(n_pref)]
    off = n_sft + n_pref
    held = [_sft(1000 + i, *nums[off + i]) for i in range(n_eval)] + \
           [_pref(1000 + i, *nums[off + n_eval + i]) for i in range(n_eval)]
    mix = root / "mix"
    _write(mix / "production.jsonl", prod)
    _write(mix / "eval.jsonl", held)
    trl = [{"prompt": r["messages"], "chosen": [r["chosen"]], "rejected": [r["rejected"]]}
           for r in prod if r["kind"] == "preference"]
    _write(root / "export" / "dpo" / "trl.jsonl", trl)
    ev = root / "eval"
    _write(ev / "gsm8k_test.jsonl.gz", [
        {"question": "Tom has 3 apples and buys 4 more. How many apples does he have?",
         "answer": "3 + 4 = <<3+4=7>>7\n#### 7"},
        {"question": "A box holds 5 pens. How many pens are in 2 boxes?", "answer": "5 * 2 = <<5*2=10>>10\n#### 10"}])
    _write(ev / "mt_q.jsonl", [{"question_id": 101, "category": "reasoning",
                                "turns": ["Name a primary color.", "Name another one."]}])
    _write(ev / "mt_a.jsonl", [{"question_id": 101, "choices": [{"index": 0, "turns": ["Red.", "Blue."]}]}])
    (ev / "tqa.csv").write_text("Type,Category,Question,Best Answer,Correct Answers,Incorrect Answers,Source\n"
                                "A,B,What color is the sky on a clear day?,Blue,Blue,Green,x\n"
                                "A,B,How many legs does a cat have?,Four,Four,Six,x\n")
    params = root / "params.yaml"
    params.write_text(f"""
project: {{seed: 7, metrics_dir: {root / 'metrics'}}}
tracking: {{}}
train_eval:
  steps: 12
  batch_size: 4
  learning_rate: 0.001
  max_length: 96
  dpo_steps: 3
  stats_path: {root / 'metrics' / 'stats.json'}
  loss_csv: {root / 'metrics' / 'plots' / 'train_loss.csv'}
  eval:
    gsm8k_path: {ev / 'gsm8k_test.jsonl.gz'}
    mt_bench_questions_path: {ev / 'mt_q.jsonl'}
    mt_bench_answers_path: {ev / 'mt_a.jsonl'}
    truthfulqa_path: {ev / 'tqa.csv'}
    gsm8k_ref_limit: 2
    truthfulqa_limit: 2
    gsm8k_em_limit: 2
    time_budget_s: 1000
    max_new_tokens: 24
""")
    return {"root": root, "mix": mix, "export": root / "export", "params": params, "metrics": root / "metrics"}


@pytest.fixture()
def mini_inputs(tmp_path) -> dict:
    return build_inputs(tmp_path)
