"""The dataset card's evaluation sections: what the train_eval numbers mean (sizes, 95% intervals, the
verdict), the latest dataset A/B (`distillery compare`), and how far the judge agrees with humans."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

VERDICT_TEXT = {"better": "better", "worse": "**worse**", "noise": "within noise"}


def _ci(v: Any) -> str:
    return f"[{v[0]:.4f}, {v[1]:.4f}]" if isinstance(v, list) and len(v) == 2 and None not in v else ""


def _train_eval(te: dict) -> list[str]:
    evals = te.get("evals") or {}
    lines = ["Base model vs the model LoRA-tuned on this data, scored per item by one harness. Each figure has "
             "a 95% bootstrap interval over its eval items; base and tuned are paired on the same items, and a "
             "change is called better or worse only when its paired interval excludes 0 (lower is better for "
             "losses).", "",
             "| metric | n | base [95% CI] | tuned [95% CI] | delta [95% CI] | verdict |", "|---|---|---|---|---|---|"]
    for m, d in evals.items():
        lines.append(f"| {m} | {d.get('n')} | {d.get('base', 0):.4f} {_ci(d.get('base_ci'))} | "
                     f"{d.get('tuned', 0):.4f} {_ci(d.get('tuned_ci'))} | {d.get('delta', 0):+.4f} "
                     f"{_ci(d.get('delta_ci'))} | {VERDICT_TEXT.get(d.get('verdict'), d.get('verdict'))} |")
    plan = te.get("eval_plan") or {}
    train = te.get("train") or {}
    lines += ["", f"Eval sizes (items): {', '.join(f'{k} {v}' for k, v in (te.get('eval_sizes') or {}).items())}."]
    if plan:
        lines += [f"Eval budget: {plan.get('budget_s')} CPU s planned as {plan.get('planned_cpu_s')} "
                  f"(measured {plan.get('eval_cpu_s')}); held-out topped up from ingested records never trained on: "
                  f"{(plan.get('topped_up') or {}).get('heldout', 0)} SFT, {(plan.get('topped_up') or {}).get('pairs', 0)}"
                  " pairs."]
    if train:
        lines += [f"Training: {train.get('sft_steps')} SFT steps on {train.get('sft_records')} records, DPO "
                  f"{train.get('dpo')}, seed {train.get('seed')}"
                  + (f", {PRECISION_TEXT.get(train['precision'], train['precision'])}" if train.get("precision") else "")
                  + ". One seed: see docs/train_eval.md for the seed-to-seed spread (the noise floor of a single run)."]
    return lines + ["", "Per-item scores: `data/train_eval/items.jsonl`; source: `metrics/train_eval.json`.", ""]


PRECISION_TEXT = {"bf16-mixed": "bf16 mixed precision (train and eval; per-item scores within ~0.006 nats of "
                                "float32's, docs/train_eval.md)", "float32": "float32"}


def _judge(je: dict) -> list[str]:
    res = je.get("results") or {}
    th = je.get("min_agreement")
    lines = ["## Judge reliability", "",
             "The LLM judge decides which records are kept and which answer is `chosen`. Here it judged "
             "human-labelled pairs in both orders. Agreement: 1 when both orders pick the human's choice, 0 when "
             "both pick the other, 0.5 for a tie or a position flip (chance = 0.5).", "",
             "| judge | set | pairs | agreement [95% CI] | swap consistency | tie rate | parse rate | flag |",
             "|---|---|---|---|---|---|---|---|"]
    for judge, by_set in res.items():
        for name, s in by_set.items():
            ag = "-" if s.get("agreement") is None else f"{s['agreement']:.3f} {_ci(s.get('agreement_ci'))}"
            f = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
            lines.append(f"| {judge} | {name} | {s.get('judged')} | {ag} | {f(s.get('swap_consistency'))} | "
                         f"{f(s.get('tie_rate'))} | {f(s.get('parse_rate'))} | "
                         f"{'**FLAGGED** (< ' + str(th) + ')' if s.get('flagged') else 'ok'} |")
    flagged = je.get("flagged_judges") or []
    if flagged:
        lines += ["", f"**Flagged**: {', '.join(flagged)} agree with humans less than `judge_eval.min_agreement` "
                      f"= {th}. Treat this judge's keep/reject decisions and `chosen` labels as unreliable."]
    return lines + ["", "Source: `metrics/judge_eval.json`.", ""]


def evals_section(metrics_dir: Path, read: Callable[[Path], Any], fallback: Callable[[Any, str], list[str]]
                  ) -> list[str]:
    """'Downstream evaluation' (+ the dataset A/B table when `metrics/compare.md` exists) and 'Judge
    reliability'. `read` loads a stage's merged metrics; `fallback` renders metrics of an older format."""
    te = read(metrics_dir / "train_eval.json")
    lines = ["## Downstream evaluation", ""]
    lines += _train_eval(te) if isinstance(te, dict) and te.get("evals") else fallback(te, "metrics/train_eval.json")
    cmp = metrics_dir / "compare.md"
    if cmp.exists():
        lines += ["### Dataset A/B (`distillery compare`)", "", cmp.read_text(encoding="utf-8").rstrip(), ""]
    je = read(metrics_dir / "judge_eval.json")
    if isinstance(je, dict) and je.get("results"):
        lines += _judge(je)
    else:
        lines += ["## Judge reliability", "", "Not run (no `metrics/judge_eval.json`).", ""]
    return lines
