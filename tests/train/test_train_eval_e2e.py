"""train_eval end to end on SmolLM2: SFT + DPO, before/after metrics, loss CSV, reloadable adapter."""

from __future__ import annotations

import csv
import json

from distillery.core.io import read_stage_metrics

import pytest


@pytest.mark.slow
def test_train_eval_lowers_heldout_loss_and_saves_a_reloadable_adapter(run_script, mini_inputs, smollm2_path):
    m = mini_inputs
    out = m["root"] / "out"
    (m["metrics"]).mkdir(parents=True, exist_ok=True)
    (m["metrics"] / "stats.json").write_text(json.dumps({"recommended_max_length": 80}))
    p = run_script("train_eval", "--params", m["params"], "--mix", m["mix"], "--export", m["export"],
                   "--model", smollm2_path, "--output", out, "--steps", "8",
                   "--set", "train_eval.dpo_steps=2", "--set", "train_eval.eval.gsm8k_em_limit=1",
                   "--set", "train_eval.eval.max_new_tokens=12", "--set", "train_eval.threads=1",
                   "--metrics", m["metrics"] / "train_eval.json", cwd=m["root"], timeout=1800)
    assert p.returncode == 0, p.stderr[-3000:]
    metrics = read_stage_metrics(m["metrics"] / "train_eval.json")
    before, after, delta = metrics["before"], metrics["after"], metrics["delta"]
    # the LoRA changed the model in the direction of the data
    assert after["heldout_loss"] < before["heldout_loss"]
    assert delta["heldout_loss"] == pytest.approx(after["heldout_loss"] - before["heldout_loss"], abs=1e-5)
    for k in ("heldout_ppl", "mt_bench_ref_loss", "gsm8k_ref_loss", "truthfulqa_ref_loss", "gsm8k_em",
              "pref_accuracy", "reward_margin"):
        assert k in before and k in after and k in delta
    assert before["reward_margin"] == 0.0
    # headline: six flat keys per eval metric; the delta's paired interval decides the verdict
    for k in ("heldout_loss", "gsm8k_ref_loss", "mt_bench_ref_loss", "truthfulqa_ref_loss", "pref_accuracy"):
        lo, hi, d = metrics[f"{k}_delta_ci_low"], metrics[f"{k}_delta_ci_high"], metrics[f"{k}_delta"]
        assert metrics[f"{k}_base"] == before[k] and metrics[f"{k}_tuned"] == after[k] and d == pytest.approx(
            after[k] - before[k], abs=2e-6)
        assert lo <= hi and metrics[f"{k}_verdict"] in (-1, 0, 1)
        assert metrics[f"{k}_verdict"] == (0 if lo <= 0 <= hi else (1 if (hi < 0) == k.endswith("_loss") else -1))
        assert metrics["evals"][k]["verdict"] in ("better", "worse", "noise")
    assert metrics["eval_sizes"]["heldout_loss"] == 12 and metrics["eval_sizes"]["truthfulqa_ref_loss"] == 2
    # per-item scores (the DVC out `distillery compare` reads): the figures are their weighted means
    items = [json.loads(x) for x in (out / "items.jsonl").read_text().splitlines()]
    held = [r for r in items if r["metric"] == "heldout_loss"]
    assert len(held) == 12 and {r["item"] for r in held} == {f"sft{1000 + i}" for i in range(12)}
    w = sum(r["weight"] for r in held)
    assert sum(r["tuned"] * r["weight"] for r in held) / w == pytest.approx(after["heldout_loss"], abs=1e-5)
    # the table is printed at the end of the stage
    assert "base vs tuned" in p.stdout and "heldout_loss" in p.stdout and "delta [95% CI]" in p.stdout
    assert metrics["train"]["dpo"] == "ran" and metrics["train"]["max_length"] == 80  # stats < params cap
    # loss curve: SFT steps 1..8 then DPO steps 9..10, as the DVC plot reads it
    rows = list(csv.DictReader((m["metrics"] / "plots" / "train_loss.csv").open()))
    assert [int(r["step"]) for r in rows] == list(range(1, 11))
    assert [r["phase"] for r in rows] == ["sft"] * 8 + ["dpo"] * 2
    # the saved adapter is the tuned model: reloading it reproduces the tuned held-out loss
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from distillery.train.data import load_mix
    from distillery.train.evaluate import loss_metrics

    adapter = out / "adapter"
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    assert cfg["r"] == 16 and cfg["lora_alpha"] == 32 and set(cfg["target_modules"]) == {
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    tok = AutoTokenizer.from_pretrained(adapter)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(smollm2_path), adapter).eval()
    held, _ = load_mix(m["mix"] / "eval.jsonl", limit=64)
    import torch

    # in the precision the stage recorded (bf16 mixed where the CPU runs bf16 natively)
    assert metrics["train"]["precision"] in ("bf16-mixed", "float32")
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=metrics["train"]["precision"] == "bf16-mixed"):
        assert loss_metrics(model, tok, held, 80, 8)["loss"] == pytest.approx(after["heldout_loss"], abs=1e-3)
    assert json.loads((out / "summary.json").read_text())["notes"] == []
