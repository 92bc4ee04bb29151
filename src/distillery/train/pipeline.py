"""The train_eval stage: eval the base, LoRA SFT (+ DPO), eval the tuned model, write results.

Inputs are checked before any model loads, so a bad path or a too-small mix stops in a second
with one line. Outputs: the adapter directory, the loss-curve CSV (a DVC plot) and a metrics
dict with before / after / delta per eval metric.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import DistilleryError, InputError, ParamsError
from ..core.io import atomic_dir, write_json, write_text
from .config import TrainEvalParams
from .budget import EvalPlan, plan
from .data import (Example, gsm8k_items, held_out_topup, load_dpo_rows, load_mix, mt_bench_examples,
                   recommended_max_length, record_ids, truthfulqa_examples, win_rate_prompts)
from .results import Items, compare_rows, item_rows, table, write_rows

ITEMS_FILE = "items.jsonl"   # per-item base/tuned scores, inside the stage's output directory (a DVC out)

log = logging.getLogger(__name__)


@dataclass
class Inputs:
    """Everything the stage reads, loaded and checked up front."""

    sft: list[Example]
    dpo_rows: list[dict]
    heldout: list[Example]
    heldout_pairs: list
    mt_bench: list[Example]
    gsm8k: list[dict]                 # reference-answer loss items
    max_length: int
    max_length_source: str
    notes: list[str] = field(default_factory=list)
    truthfulqa: list[Example] = field(default_factory=list)
    gsm8k_em: list[dict] = field(default_factory=list)     # greedy exact-match items (budget-sized)
    win_prompts: list[tuple[str, str]] = field(default_factory=list)   # (item id, MT-Bench question)
    plan: EvalPlan | None = None
    topup: dict[str, int] = field(default_factory=dict)


def mix_files(mix: str | Path) -> tuple[Path, Path]:
    """data/mix (dir) -> its production.jsonl and eval.jsonl; a file stands for production."""
    m = Path(mix)
    if m.is_dir():
        return m / "production.jsonl", m / "eval.jsonl"
    return m, m.with_name("eval.jsonl")


def dpo_file(export: str | Path) -> Path:
    """data/export (dir) -> dpo/trl.jsonl; data/export/dpo -> trl.jsonl; a file is itself."""
    e = Path(export)
    if e.is_dir():
        return e / "trl.jsonl" if (e / "trl.jsonl").exists() else e / "dpo" / "trl.jsonl"
    return e


def load_inputs(p: TrainEvalParams, mix: str | Path, export: str | Path, eval_path: str | Path | None = None
                ) -> Inputs:
    prod, heldout_path = mix_files(mix)
    if eval_path is not None:
        heldout_path = Path(eval_path)
    sft, _ = load_mix(prod)
    need = p.batch_size * p.grad_accum
    if len(sft) < need:
        raise InputError(f"{prod}: {len(sft)} SFT records, fewer than one batch (train_eval.batch_size="
                         f"{p.batch_size} x grad_accum={p.grad_accum} = {need}); lower the batch size or grow the mix")
    notes: list[str] = []
    dpo_path = dpo_file(export)
    rows: list[dict] = []
    if p.dpo != "off":
        rows = load_dpo_rows(dpo_path)
        if not rows:
            msg = f"{dpo_path}: no preference rows (empty or missing DPO export)"
            if p.dpo == "required":
                raise InputError(f"{msg}; train_eval.dpo=required (set it to auto to train SFT only)")
            notes.append(f"DPO skipped: {msg}")
            log.warning("DPO skipped: %s (train_eval.dpo=auto)", msg)
        elif len(rows) < need:
            raise InputError(f"{dpo_path}: {len(rows)} DPO rows, fewer than one batch ({need}); "
                             "lower train_eval.batch_size or set train_eval.dpo=off")
    else:
        notes.append("DPO off (train_eval.dpo=off)")
    if not heldout_path.exists():
        raise InputError(f"{heldout_path}: held-out eval split not found (the mix stage writes it)")
    e = p.eval
    heldout, pairs = load_mix(heldout_path, limit=e.heldout_limit)
    if e.pairs_limit:
        pairs = pairs[:e.pairs_limit]
    topup = _topup(e, prod, heldout, pairs, notes)
    if not heldout:
        notes.append(f"{heldout_path}: no SFT records, held-out loss not measured")
    mt = mt_bench_examples(e.mt_bench_questions_path, e.mt_bench_answers_path, e.mt_bench_limit)
    gsm_all = gsm8k_items(e.gsm8k_path, max(e.gsm8k_ref_limit, e.gsm8k_em_limit)) \
        if (e.gsm8k_ref_limit or e.gsm8k_em_limit) else []
    tqa = truthfulqa_examples(e.truthfulqa_path, e.truthfulqa_limit) if e.truthfulqa_limit else []
    judge_on = bool(p.judge.teacher) and p.judge.prompts > 0
    win_all = win_rate_prompts(e.mt_bench_questions_path, e.wizardlm_path, p.judge.prompts) if judge_on else []
    gsm_ref = gsm_all[:e.gsm8k_ref_limit]
    loss_items = len(heldout) + 2 * len(pairs) + len(mt) + len(gsm_ref) + len(tqa)
    pl = plan(e, loss_items, len(gsm_all), len(win_all), judge_on)
    if pl.over_budget:
        notes.append(f"eval loss floors alone need ~{2 * loss_items * e.loss_item_cpu_s:.0f} CPU s, over "
                     f"train_eval.eval.time_budget_s={e.time_budget_s:g}; no greedy-generation evals run")
    max_len, src = recommended_max_length(p.stats_path, p.max_length)
    return Inputs(sft, rows, heldout, pairs, mt, gsm_ref, max_len, src, notes, tqa, gsm_all[:pl.gsm8k_em],
                  win_all[:pl.win_rate], pl, topup)


def _topup(e, prod: Path, heldout: list[Example], pairs: list, notes: list[str]) -> dict[str, int]:
    """Fill held-out SFT records / pairs up to their floors with ingested records training never saw."""
    need_sft = max(0, e.heldout_limit - len(heldout)) if e.heldout_limit else 0
    need_pairs = max(0, e.pairs_limit - len(pairs)) if e.pairs_limit else 0
    if not e.topup_from or not (need_sft or need_pairs):
        return {"heldout": 0, "pairs": 0}
    seen = {x.id for x in heldout} | {x.id for x in pairs}
    sft, prs = held_out_topup(list(e.topup_from), record_ids(prod), need_sft, need_pairs, seen)
    heldout.extend(sft)
    pairs.extend(prs)
    if sft or prs:
        notes.append(f"held-out topped up with {len(sft)} SFT records and {len(prs)} preference pairs from "
                     f"train_eval.eval.topup_from (ingested records not in the production mix)")
    return {"heldout": len(sft), "pairs": len(prs)}


def _precision(model, p: TrainEvalParams):
    """The autocast every eval runs under: bf16 mixed precision when training uses it (`train_eval.dtype`)."""
    import torch

    from .trainer import mixed_bf16

    dev = next(model.parameters()).device.type
    return torch.autocast(device_type=dev, dtype=torch.bfloat16, enabled=mixed_bf16(p, dev))


def evaluate_model(model, tok, inp: Inputs, p: TrainEvalParams, base_pairs=None) -> tuple[Items, Any]:
    """Per-item scores of one model on every eval set; returns (items per metric, pair log-probs). Runs in
    bf16 mixed precision when training does (`train_eval.dtype`); log-probs are summed in float32."""
    with _precision(model, p):
        return _evaluate(model, tok, inp, p, base_pairs)


def _evaluate(model, tok, inp: Inputs, p: TrainEvalParams, base_pairs) -> tuple[Items, Any]:
    from .evaluate import gsm8k_em_items, loss_items, pair_logps, preference_items

    e = p.eval
    bs, ml = e.batch_size, inp.max_length
    out: Items = {}
    refs = [Example([{"role": "user", "content": it["question"]}], it["solution"], it["id"]) for it in inp.gsm8k]
    for name, exs in (("heldout_loss", inp.heldout), ("gsm8k_ref_loss", refs), ("mt_bench_ref_loss", inp.mt_bench),
                      ("truthfulqa_ref_loss", inp.truthfulqa)):
        if exs:
            out[name] = loss_items(model, tok, exs, ml, bs)
    if inp.gsm8k_em:
        out["gsm8k_em"] = gsm8k_em_items(model, tok, inp.gsm8k_em, e.max_new_tokens, bs, ml)
    lp = None
    if inp.heldout_pairs:
        lp = pair_logps(model, tok, inp.heldout_pairs, ml, bs)
        out.update(preference_items(inp.heldout_pairs, lp, base_pairs, p.dpo_beta))
    return out, lp


def aggregate(items: Items) -> dict[str, float]:
    """Flat figure per metric (weighted mean of its items), plus held-out perplexity."""
    import math

    out = {}
    for m, rows in items.items():
        w = sum(x[2] for x in rows)
        if w:
            out[m] = round(sum(v * n for _, v, n in rows) / w, 6)
    if "heldout_loss" in out:
        out["heldout_ppl"] = round(math.exp(min(out["heldout_loss"], 50.0)), 4)
    return out


def delta(before: dict, after: dict) -> dict:
    return {k: round(after[k] - before[k], 6) for k in after
            if isinstance(after.get(k), (int, float)) and isinstance(before.get(k), (int, float))}


def write_loss_csv(path: str | Path, curve: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["step", "phase", "loss"], lineterminator="\n")
    w.writeheader()
    w.writerows(curve)
    write_text(path, buf.getvalue())


def save_adapter(model, tok, out_dir: Path) -> Path:
    """Save the LoRA adapter (+ tokenizer) into out_dir/adapter atomically."""
    target = out_dir / "adapter"
    with atomic_dir(target) as tmp:
        model.save_pretrained(tmp, selected_adapters=["default"])
        tok.save_pretrained(tmp)
    return target


def _judge(params: Any, p: TrainEvalParams, model, tok, inp: Inputs) -> tuple[dict, Items]:
    """Judged win rate of tuned vs base on MT-Bench first turns and WizardLM instructions: the summary (with
    one per set under `by_set`) and per-question points."""
    from .evaluate import generate
    from .judge import judge_win_rate, win_rate_by_set

    if not inp.win_prompts:
        return {}, {}
    prompts = [[{"role": "user", "content": q}] for _, q in inp.win_prompts]
    e = p.eval
    with _precision(model, p):      # the answers in the precision the losses were scored in
        tuned = generate(model, tok, prompts, e.max_new_tokens, e.batch_size, inp.max_length)
        with model.disable_adapter():
            base = generate(model, tok, prompts, e.max_new_tokens, e.batch_size, inp.max_length)
    out = judge_win_rate(params, p.judge.teacher, [q for _, q in inp.win_prompts], tuned, base)
    points = out.pop("points")
    rows = [(k, pt, 1) for (k, _), pt in zip(inp.win_prompts, points) if pt is not None]
    out["by_set"] = win_rate_by_set([k for k, _ in inp.win_prompts], points)
    return out, {"win_rate": rows}


class _Clock:
    """Wall and process-CPU seconds per phase (CPU time is what a busy shared machine does not distort)."""

    def __init__(self):
        self.out: dict[str, float] = {}
        self._t = (time.time(), time.process_time())

    def lap(self, name: str) -> None:
        now = (time.time(), time.process_time())
        self.out[f"{name}_s"] = round(now[0] - self._t[0], 2)
        self.out[f"{name}_cpu_s"] = round(now[1] - self._t[1], 2)
        self._t = now


def run_train_eval(params: Any, mix: str | Path, export: str | Path, output: str | Path,
                   eval_path: str | Path | None = None) -> tuple[dict, list[Path]]:
    """The whole stage. Returns (metrics, artifacts); the caller hands both to StageRun.finish."""
    from ..models import load_causal_lm, load_tokenizer, resolve_model_path
    from .trainer import add_lora, mixed_bf16, pick_device, train_dpo, train_sft

    p: TrainEvalParams = params.train_eval
    seed = p.seed if p.seed is not None else params.project.seed
    try:
        resolve_model_path(p.base_model)
    except DistilleryError as e:
        raise ParamsError(f"train_eval.base_model: {e}") from None
    inp = load_inputs(p, mix, export, eval_path)
    device = pick_device(p.device)
    clock = _Clock()
    tok = load_tokenizer(p.base_model)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    import torch

    if p.threads:
        torch.set_num_threads(p.threads)
    torch.manual_seed(seed)
    mixed = mixed_bf16(p, device)
    # CUDA holds bf16 weights; a CPU keeps float32 weights (the optimizer's) and runs bf16 under autocast
    model = load_causal_lm(p.base_model, dtype="bfloat16" if mixed and device == "cuda" else "float32", device=device)
    clock.lap("load")
    log.info("train_eval: %d SFT, %d DPO rows, %d held-out, max_length %d (%s), device %s", len(inp.sft),
             len(inp.dpo_rows), len(inp.heldout), inp.max_length, inp.max_length_source, device)

    before, base_pairs = evaluate_model(model, tok, inp, p)
    clock.lap("eval_base")
    log.info("base: %s", aggregate(before))

    model = add_lora(model, p, seed)
    curve = train_sft(model, tok, inp.sft, p, device, seed, inp.max_length)
    clock.lap("sft")
    dpo_status = "skipped" if not inp.dpo_rows else "ran"
    if inp.dpo_rows:
        curve += train_dpo(model, tok, inp.dpo_rows, p, device, seed, inp.max_length, step_offset=p.steps)
        clock.lap("dpo")
    model.eval()

    after, _ = evaluate_model(model, tok, inp, p, base_pairs=base_pairs)
    judged: dict = {}
    if p.judge.teacher:
        judged, win_items = _judge(params, p, model, tok, inp)
        after.update(win_items)
        # the base judged against itself is a coin flip by symmetry: 0.5 per question
        before.update({m: [(k, 0.5, w) for k, _, w in rows] for m, rows in win_items.items()})
    clock.lap("eval_tuned")

    out = Path(output)
    adapter = save_adapter(model, tok, out)
    write_loss_csv(p.loss_csv, curve)
    rows = item_rows(before, after)
    write_rows(out / ITEMS_FILE, rows)
    results = compare_rows(rows, p.eval.n_boot, seed)
    agg_before, agg_after = aggregate(before), aggregate(after)
    for r in results:   # one figure per metric everywhere: the one computed from the per-item file
        agg_before[r.metric], agg_after[r.metric] = r.a, r.b
    log.info("tuned: %s", agg_after)
    trainable = sum(x.numel() for x in model.parameters() if x.requires_grad)
    sft_losses = [c["loss"] for c in curve if c["phase"] == "sft"]
    headline: dict[str, Any] = {}
    for r in results:
        headline.update(r.flat())
    sizes = {r.metric: r.n for r in results}
    metrics = {
        **headline,
        "evals": {r.metric: r.details() for r in results},
        "before": agg_before, "after": {**agg_after, **judged}, "delta": delta(agg_before, agg_after),
        "train": {"sft_records": len(inp.sft), "dpo_rows": len(inp.dpo_rows), "dpo": dpo_status,
                  "sft_steps": p.steps, "dpo_steps": p.dpo_steps if inp.dpo_rows else 0,
                  "max_length": inp.max_length, "trainable_params": trainable, "device": device, "seed": seed,
                  "precision": "bf16-mixed" if mixed else "float32",
                  "first_loss": sft_losses[0] if sft_losses else None,
                  "last_loss": sft_losses[-1] if sft_losses else None},
        "eval_sizes": sizes,
        "eval_plan": {**(inp.plan.as_dict() if inp.plan else {}), "topped_up": inp.topup,
                      "eval_cpu_s": round(clock.out.get("eval_base_cpu_s", 0) + clock.out.get("eval_tuned_cpu_s", 0),
                                          1)},
        "items_file": str(out / ITEMS_FILE),
        "timing": {**clock.out, "cpu_total_s": round(time.process_time(), 2)},
    }
    write_json(out / "summary.json", {**{k: v for k, v in metrics.items() if k not in headline and k != "timing"},
                                      "notes": inp.notes, "base_model": p.base_model,
                                      "max_length_source": inp.max_length_source})
    for note in inp.notes:
        log.warning("%s", note)
    metrics["_table"] = table(results)
    return metrics, [adapter, Path(p.loss_csv)]
