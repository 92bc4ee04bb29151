"""Inputs of train_eval: SFT examples from the mix, DPO rows from the export, eval sets.

Everything becomes (prompt messages, completion text) pairs so that training (TRL's
prompt-completion format, loss on the completion only) and evaluation (our loss harness)
score exactly the same tokens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..core.errors import InputError
from ..core.io import iter_jsonl, read_json
from ..core.records import check_roles

CALC_ANNOTATION = re.compile(r"<<[^>]*>>")


@dataclass
class Example:
    """One scored completion: the conversation before it and the assistant text."""

    prompt: list[dict]
    completion: str
    id: str = ""            # the item key per-item scores are paired on (record id, benchmark index)


@dataclass
class Pair:
    """One preference: a prompt and two assistant answers."""

    prompt: list[dict]
    chosen: str
    rejected: str
    id: str = ""


def _good(path: Path) -> Iterator[dict]:
    for _, obj in iter_jsonl(path):
        if isinstance(obj, dict):
            yield obj


def sft_example(rec: dict) -> Example | None:
    """An SFT record -> prompt + final assistant turn (None if the record is not usable SFT)."""
    msgs = rec.get("messages") or []
    if rec.get("kind") != "sft" or check_roles("sft", msgs) is not None:
        return None
    return Example([{"role": m["role"], "content": m["content"]} for m in msgs[:-1]], msgs[-1]["content"],
                   str(rec.get("id", "")))


def preference_pair(rec: dict) -> Pair | None:
    msgs = rec.get("messages") or []
    if rec.get("kind") != "preference" or check_roles("preference", msgs, rec.get("chosen"),
                                                      rec.get("rejected")) is not None:
        return None
    return Pair([{"role": m["role"], "content": m["content"]} for m in msgs],
                rec["chosen"]["content"], rec["rejected"]["content"], str(rec.get("id", "")))


def load_mix(path: str | Path, limit: int = 0) -> tuple[list[Example], list[Pair]]:
    """SFT examples and preference pairs of a mix file (production or eval split), in file order."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: mix file not found (run the mix stage first)")
    sft: list[Example] = []
    pairs: list[Pair] = []
    for rec in _good(p):
        ex = sft_example(rec)
        if ex is not None and (not limit or len(sft) < limit):
            sft.append(ex)
            continue
        pr = preference_pair(rec)
        if pr is not None and (not limit or len(pairs) < limit):
            pairs.append(pr)
    return sft, pairs


def _as_messages(v, role: str) -> list[dict] | None:
    if isinstance(v, str):
        return [{"role": role, "content": v}]
    if isinstance(v, list) and all(isinstance(m, dict) and "content" in m for m in v):
        return [{"role": m.get("role", role), "content": m["content"]} for m in v]
    return None


def load_dpo_rows(path: str | Path) -> list[dict]:
    """TRL explicit-prompt DPO rows ({prompt, chosen, rejected}, conversational), bad rows dropped.

    A missing file counts as an empty export (the export stage writes none when the mix has no pairs).
    """
    p = Path(path)
    if p.is_dir():
        p = p / "trl.jsonl"
    if not p.exists():
        return []
    rows = []
    for obj in _good(p):
        prompt = _as_messages(obj.get("prompt"), "user")
        chosen = _as_messages(obj.get("chosen"), "assistant")
        rejected = _as_messages(obj.get("rejected"), "assistant")
        if prompt and chosen and rejected:
            rows.append({"prompt": prompt, "chosen": chosen, "rejected": rejected})
    return rows


def recommended_max_length(stats_path: str | Path, cap: int) -> tuple[int, str]:
    """min(stats' recommended_max_length, cap) and where the value came from."""
    p = Path(stats_path)
    if not p.exists():
        return cap, "params (no stats file)"
    rec = read_json(p).get("recommended_max_length")
    if isinstance(rec, (int, float)) and rec > 0:
        return (int(rec), "stats") if rec < cap else (cap, "params cap")
    return cap, "params (stats has no recommended_max_length)"


def gsm8k_items(path: str | Path, limit: int) -> list[dict]:
    """The first `limit` GSM8K test items: question, solution (annotations stripped), final answer."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: GSM8K eval file not found (train_eval.eval.gsm8k_path)")
    out = []
    for obj in _good(p):
        ans = obj.get("answer") or ""
        if "####" not in ans or not obj.get("question"):
            continue
        solution = CALC_ANNOTATION.sub("", ans)
        final = ans.rsplit("####", 1)[1].strip().replace(",", "")
        out.append({"question": obj["question"], "solution": solution, "final": final, "id": f"gsm8k:{len(out)}"})
        if limit and len(out) >= limit:
            break
    return out


def mt_bench_examples(questions_path: str | Path, answers_path: str | Path, limit: int) -> list[Example]:
    """MT-Bench reference answers as examples: turn 1 answer given turn 1, turn 2 given the dialogue."""
    qp, ap = Path(questions_path), Path(answers_path)
    for f in (qp, ap):
        if not f.exists():
            raise InputError(f"{f}: MT-Bench eval file not found (train_eval.eval.*_path)")
    questions = {o["question_id"]: o.get("turns") or [] for o in _good(qp) if "question_id" in o}
    out: list[Example] = []
    for obj in sorted(_good(ap), key=lambda o: o.get("question_id", 0)):
        turns = questions.get(obj.get("question_id"))
        answers = ((obj.get("choices") or [{}])[0]).get("turns") or []
        if not turns or not answers:
            continue
        history: list[dict] = []
        for q, a in zip(turns, answers):
            history.append({"role": "user", "content": q})
            out.append(Example(list(history), a, f"mt_bench:{obj.get('question_id')}:t{len(history) // 2 + 1}"))
            history.append({"role": "assistant", "content": a})
        if limit and len(out) >= limit:
            break
    return out[:limit] if limit else out


def last_number(text: str) -> str | None:
    """The last number in a text (GSM8K exact match compares final numbers)."""
    nums = re.findall(r"-?\d[\d,]*\.?\d*", text or "")
    if not nums:
        return None
    n = nums[-1].replace(",", "").rstrip(".")
    if "." in n:
        n = n.rstrip("0").rstrip(".")
    return n


def truthfulqa_examples(path: str | Path, limit: int) -> list[Example]:
    """TruthfulQA (CSV: Question, Best Answer) as reference answers: the best answer given the question."""
    import csv

    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: TruthfulQA eval file not found (train_eval.eval.truthfulqa_path)")
    out: list[Example] = []
    with p.open(encoding="utf-8", newline="") as fh:
        for i, row in enumerate(csv.DictReader(fh)):
            q, a = (row.get("Question") or "").strip(), (row.get("Best Answer") or "").strip()
            if q and a:
                out.append(Example([{"role": "user", "content": q}], a, f"truthfulqa:{i}"))
            if limit and len(out) >= limit:
                break
    return out


def mt_bench_prompts(questions_path: str | Path, limit: int) -> list[tuple[str, str]]:
    """(item id, first-turn question) of every MT-Bench question, in question_id order (the win-rate prompts)."""
    qp = Path(questions_path)
    if not qp.exists():
        raise InputError(f"{qp}: MT-Bench eval file not found (train_eval.eval.mt_bench_questions_path)")
    rows = sorted((o for o in _good(qp) if o.get("turns")), key=lambda o: o.get("question_id", 0))
    out = [(f"mt_bench:{o.get('question_id')}", o["turns"][0]) for o in rows]
    return out[:limit] if limit else out


def wizardlm_prompts(path: str | Path) -> list[tuple[str, str]]:
    """(item id, instruction) of the WizardLM test set (218 instructions, no reference answers), in idx order."""
    wp = Path(path)
    if not wp.exists():
        raise InputError(f"{wp}: WizardLM test set not found (train_eval.eval.wizardlm_path)")
    rows = sorted((o for o in _good(wp) if str(o.get("Instruction", "")).strip()), key=lambda o: o.get("idx", 0))
    return [(f"wizardlm:{o.get('idx')}", o["Instruction"]) for o in rows]


def win_rate_prompts(mt_bench_questions: str | Path, wizardlm: str | Path | None, limit: int) -> list[tuple[str, str]]:
    """The judged win rate's prompts: MT-Bench first turns and WizardLM instructions, alternating, so that a
    budget that cuts the list still judges both sets; item ids say the set (`mt_bench:81`, `wizardlm:5`)."""
    from itertools import chain, zip_longest

    sets = [mt_bench_prompts(mt_bench_questions, 0)] + ([wizardlm_prompts(wizardlm)] if wizardlm else [])
    out = [x for x in chain.from_iterable(zip_longest(*sets)) if x is not None]
    return out[:limit] if limit else out


def held_out_topup(paths: list[Path], trained_ids: set[str], need_sft: int, need_pairs: int,
                   seen: set[str]) -> tuple[list[Example], list[Pair]]:
    """Ingested records the model was never trained on (id not in the production mix), in file order:
    they top up the held-out split when the mix's eval split holds fewer than the eval floors."""
    sft: list[Example] = []
    pairs: list[Pair] = []
    for path in paths:
        if not Path(path).exists():
            continue
        for rec in _good(Path(path)):
            rid = str(rec.get("id", ""))
            if not rid or rid in trained_ids or rid in seen:
                continue
            if len(sft) < need_sft and (ex := sft_example(rec)) is not None:
                sft.append(ex)
                seen.add(rid)
            elif len(pairs) < need_pairs and (pr := preference_pair(rec)) is not None:
                pairs.append(pr)
                seen.add(rid)
            if len(sft) >= need_sft and len(pairs) >= need_pairs:
                return sft, pairs
    return sft, pairs


def record_ids(path: str | Path) -> set[str]:
    """Ids of every record of a JSONL file (the production mix: what training saw)."""
    return {str(o["id"]) for o in _good(Path(path)) if "id" in o}
