"""What the page shows of a record, a quarantine entry or a lineage step: small, truncated, plain values.

Views are built only for the items a sample keeps. Every function accepts anything (a quarantined
record may have any shape) and returns strings, numbers and lists of them; the renderer escapes them.
"""

from __future__ import annotations

import json
import math
from typing import Any, Iterable

# lineage keys shown in a step's header (the rest go into its "other fields")
STEP_HEAD = ("stage", "role", "teacher", "model", "finish_reason")
STEP_HIDDEN = STEP_HEAD + ("prompt",)


def clip(text: str, max_chars: int) -> str:
    """`text` cut to `max_chars`, saying how much was left out."""
    if len(text) <= max_chars:
        return text
    return text[:max_chars] + f" … [{len(text) - max_chars:,} more characters]"


def compact(value: Any, max_chars: int) -> str:
    """One-line JSON (arbitrary values, NaN included) cut to `max_chars`."""
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)
    except (TypeError, ValueError, RecursionError):
        text = repr(value)
    return clip(text, max_chars)


def text_of(value: Any) -> str:
    return value if isinstance(value, str) else compact(value, 10_000)


def messages_view(rec: Any, max_chars: int) -> list[tuple[str, str]]:
    """(role, text) of a record's messages, then its chosen / rejected answers; any shape accepted."""
    if not isinstance(rec, dict):
        return []
    out: list[tuple[str, str]] = []
    msgs = rec.get("messages")
    if isinstance(msgs, list):
        for m in msgs[:50]:
            if isinstance(m, dict):
                out.append((str(m.get("role", "?"))[:40], clip(text_of(m.get("content", "")), max_chars)))
            else:
                out.append(("?", clip(text_of(m), max_chars)))
        if len(msgs) > 50:
            out.append(("…", f"{len(msgs) - 50} more messages"))
    for key in ("chosen", "rejected"):
        ans = rec.get(key)
        if isinstance(ans, dict):
            out.append((key, clip(text_of(ans.get("content", "")), max_chars)))
        elif ans is not None:
            out.append((key, clip(text_of(ans), max_chars)))
    return out


def plain_text(view: list[tuple[str, str]]) -> str:
    """The conversation as one text (what the side-by-side comparisons show)."""
    return "\n\n".join(f"[{role}] {text}" for role, text in view)


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def judge_overall(rec: dict) -> float | None:
    scores = rec.get("scores")
    judge = scores.get("judge") if isinstance(scores, dict) else None
    v = judge.get("overall") if isinstance(judge, dict) else None
    return float(v) if is_number(v) else None


def scores_view(scores: Any, max_chars: int) -> list[tuple[str, str]]:
    """(name, value) pairs: judge dimensions, heuristic flags that fired, anything else as JSON."""
    if not isinstance(scores, dict):
        return [] if scores is None else [("scores", compact(scores, max_chars))]
    out: list[tuple[str, str]] = []
    for name, value in scores.items():
        if name == "judge" and isinstance(value, dict):
            out += [(f"judge.{k}", compact(v, 200) if not isinstance(v, str) else v[:200]) for k, v in value.items()]
        elif name == "heuristic" and isinstance(value, dict):
            flags = [k for k, v in value.items() if v is True]
            nums = [f"{k} {v}" for k, v in value.items() if is_number(v)]
            out.append(("heuristic", ", ".join(nums + ([f"flags: {', '.join(flags)}"] if flags else ["no flags"]))))
        else:
            out.append((str(name), compact(value, max_chars)))
    return out


def prompt_text(prompt: Any, max_chars: int) -> str:
    """A step's exact prompt: chat messages as `[role] content` blocks, or the raw completion text."""
    if isinstance(prompt, str):
        return clip(prompt, max_chars)
    if isinstance(prompt, list) and all(isinstance(m, dict) for m in prompt):
        return clip("\n\n".join(f"[{m.get('role', '?')}] {text_of(m.get('content', ''))}" for m in prompt), max_chars)
    return compact(prompt, max_chars)


def lineage_view(lineage: Any, max_steps: int, max_chars: int) -> tuple[list[dict[str, str]], int]:
    """The last `max_steps` steps (header fields, prompt, other fields) and how many were left out."""
    if not isinstance(lineage, list):
        return ([{"stage": "?", "other": compact(lineage, max_chars)}] if lineage is not None else []), 0
    skipped = max(0, len(lineage) - max_steps)
    out = []
    for step in lineage[skipped:]:
        if not isinstance(step, dict):
            out.append({"stage": "?", "other": compact(step, max_chars)})
            continue
        v = {k: (step[k] if isinstance(step[k], str) else compact(step[k], 200))[:200] for k in STEP_HEAD if k in step}
        if "prompt" in step:
            v["prompt"] = prompt_text(step["prompt"], max_chars)
        rest = {k: x for k, x in step.items() if k not in STEP_HIDDEN}
        if rest:
            v["other"] = compact(rest, max_chars)
        out.append(v)
    return out, skipped


def generated_stage(rec: Any, stages: Iterable[str]) -> str:
    """The last generation stage in the record's lineage, '' for an ingested record."""
    lineage = rec.get("lineage") if isinstance(rec, dict) else None
    if not isinstance(lineage, list):
        return ""
    stages = set(stages)
    for step in reversed(lineage):
        if isinstance(step, dict) and step.get("stage") in stages:
            return str(step["stage"])
    return ""


def models_of(rec: dict) -> list[str]:
    """`teacher (model)` of every model call in the lineage, in order, once each."""
    seen: list[str] = []
    for step in rec.get("lineage") or []:
        if isinstance(step, dict) and (step.get("model") or step.get("teacher")):
            name = f"{step.get('teacher', '?')} ({step.get('model', '?')})"
            if name not in seen:
                seen.append(name)
    return seen


def record_view(rec: dict, file: str, line: int, max_chars: int, max_steps: int, stages: Iterable[str]
                ) -> dict[str, Any]:
    """A kept record as the Samples section shows it."""
    source = rec.get("source") if isinstance(rec.get("source"), dict) else {}
    lineage, skipped = lineage_view(rec.get("lineage"), max_steps, max_chars)
    labels = rec.get("labels")
    return {
        "id": str(rec.get("id")), "kind": str(rec.get("kind")), "bucket": str(rec.get("bucket") or "(none)"),
        "dataset": str(source.get("dataset", "?")), "row": compact(source.get("row"), 80),
        "where": f"{file}:{line}", "generated": generated_stage(rec, stages),
        "messages": messages_view(rec, max_chars), "scores": scores_view(rec.get("scores"), max_chars),
        "models": models_of(rec), "lineage": lineage, "lineage_skipped": skipped,
        "labels": compact(labels, max_chars) if labels else "",
        "copy_of": str(rec["mix_copy_of"]) if "mix_copy_of" in rec else "",
    }


ENTRY_KEYS = ("reason", "stage", "file", "line", "detail", "record", "raw")


def reject_view(entry: dict, file: str, line: int, max_chars: int) -> dict[str, Any]:
    """A quarantine entry as the Rejects section shows it."""
    rec = entry.get("record")
    extra = {k: v for k, v in entry.items() if k not in ENTRY_KEYS}
    return {
        "reason": str(entry.get("reason")), "stage": str(entry.get("stage", "?")),
        "where": ":".join(str(entry[k]) for k in ("file", "line") if k in entry), "quarantine": f"{file}:{line}",
        "detail": clip(text_of(entry["detail"]), max_chars) if "detail" in entry else "",
        "id": str(rec.get("id")) if isinstance(rec, dict) and "id" in rec else "",
        "messages": messages_view(rec, max_chars),
        "record": compact(rec, max_chars) if rec is not None and not messages_view(rec, 1) else "",
        "raw": clip(text_of(entry["raw"]), max_chars) if "raw" in entry else "",
        "extra": compact(extra, max_chars) if extra else "",
    }
