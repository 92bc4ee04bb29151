"""Flattened views of exports and mixes: Great Expectations cannot address nested lists.

One row per exported line with scalar columns (role sequence string, turn counts, empty turns,
character lengths, bucket and judge score joined from the mix by id). A line that is not valid
JSON or has no usable messages still gets a row, with role sequence `<invalid>`, so the suite
names it instead of the loader crashing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import xxhash

from ..core.io import BadLine, iter_jsonl
from ..mix.config import MixParams
from ..mix.split import is_eval

INVALID = "<invalid>"


def _msgs(v: Any) -> list[dict] | None:
    if isinstance(v, dict):
        v = [v]
    if isinstance(v, str):
        return None
    if not isinstance(v, list) or not all(isinstance(m, dict) for m in v):
        return None
    return v


def _roles(msgs: list[dict] | None) -> str:
    return INVALID if msgs is None else ",".join(str(m.get("role")) for m in msgs)


def _empty(msgs: list[dict] | None) -> int:
    return 0 if msgs is None else sum(1 for m in msgs if not str(m.get("content") or "").strip())


def _chars(msgs: list[dict] | None) -> int:
    return 0 if msgs is None else sum(len(str(m.get("content") or "")) for m in msgs)


def _key(msgs: list[dict] | None) -> str:
    if msgs is None:
        return ""
    blob = json.dumps([[m.get("role"), m.get("content")] for m in msgs], ensure_ascii=False)
    return xxhash.xxh3_64_hexdigest(blob.encode("utf-8"))


class MixIndex:
    """id -> (bucket, judge overall score) from the mix stage's files (exports drop both)."""

    def __init__(self, mix_dir: str | Path | None):
        self.info: dict[str, tuple[str | None, float | None]] = {}
        if mix_dir is None or not Path(mix_dir).is_dir():
            return
        d = Path(mix_dir)
        for f in [d / "production.jsonl", d / "eval.jsonl", *sorted((d / "phases").glob("*.jsonl"))]:
            if f.exists():
                for _, rec in iter_jsonl(f):
                    if not isinstance(rec, BadLine) and isinstance(rec.get("id"), str):
                        self.info.setdefault(rec["id"], (rec.get("bucket"), judge_score(rec)))

    def get(self, row: dict) -> tuple[str | None, float | None]:
        bucket, score = self.info.get(row.get("id") or "", (None, None))
        if isinstance(row.get("bucket"), str):
            bucket = row["bucket"]
        return bucket, score


def judge_score(rec: dict) -> float | None:
    s = ((rec.get("scores") or {}).get("judge") or {}).get("overall")
    return float(s) if isinstance(s, (int, float)) and not isinstance(s, bool) else None


def _frame(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    if "score" in df:
        df["score"] = pd.to_numeric(df["score"], errors="coerce").astype("float64")
    return df


def flatten_sft(path: Path, mix: MixIndex) -> pd.DataFrame:
    rows = []
    for line, obj in iter_jsonl(path):
        raw = {} if isinstance(obj, BadLine) else obj
        msgs = _msgs(raw.get("messages"))
        roles = [m.get("role") for m in msgs or []]
        bucket, score = mix.get(raw)
        rows.append({"row": line, "id": str(raw.get("id") or ""), "role_seq": _roles(msgs),
                     "user_turns": roles.count("user"), "assistant_turns": roles.count("assistant"),
                     "empty_turns": _empty(msgs), "chars": _chars(msgs), "bucket": bucket or "",
                     "score": score, "conversation": _key(msgs)})
    return _frame(rows)


def flatten_dpo(path: Path, mix: MixIndex) -> pd.DataFrame:
    rows = []
    for line, obj in iter_jsonl(path):
        raw = {} if isinstance(obj, BadLine) else obj
        prompt, chosen, rejected = _msgs(raw.get("prompt")), _msgs(raw.get("chosen")), _msgs(raw.get("rejected"))
        bucket, score = mix.get(raw)
        ck, rk = _key(chosen), _key(rejected)
        rows.append({"row": line, "id": str(raw.get("id") or ""), "prompt_roles": _roles(prompt),
                     "prompt_user_turns": [m.get("role") for m in prompt or []].count("user"),
                     "chosen_roles": _roles(chosen), "rejected_roles": _roles(rejected),
                     "empty_turns": _empty(prompt) + _empty(chosen) + _empty(rejected),
                     "chosen_chars": _chars(chosen), "rejected_chars": _chars(rejected),
                     "chosen_equals_rejected": bool(ck) and ck == rk, "bucket": bucket or "", "score": score})
    return _frame(rows)


def mix_records(mix_dir: Path, mix: MixParams) -> pd.DataFrame:
    """One row per record in production and every phase file: phase, id, bucket, held-out flag."""
    rows = []
    files = [("production", mix_dir / "production.jsonl")]
    files += [(f.stem, f) for f in sorted((mix_dir / "phases").glob("*.jsonl"))]
    for phase, f in files:
        if not f.exists():
            continue
        for line, rec in iter_jsonl(f):
            rec = {} if isinstance(rec, BadLine) else rec
            rid = str(rec.get("mix_copy_of") or rec.get("id") or "")
            rows.append({"phase": phase, "row": line, "id": str(rec.get("id") or ""),
                         "bucket": str(rec.get("bucket") or ""),
                         "in_eval_split": bool(rid) and is_eval(rid, mix.eval_fraction, mix.eval_salt)})
    return pd.DataFrame(rows, columns=["phase", "row", "id", "bucket", "in_eval_split"])


def mix_shares(records: pd.DataFrame, composition: dict[str, Any], mix: MixParams) -> pd.DataFrame:
    """One row per (phase, bucket of the manifest) comparing the files with the manifest.

    A bucket is saturated when it gave every record it could (count >= its limit from composition.json,
    i.e. its capped pool, times max_repeat when upsampling). `share_gap`: for unsaturated buckets, the
    gap between the realised share and the manifest weight, both renormalised over the unsaturated
    buckets of the phase (0 for saturated ones). `shortfall`: how far the count falls below
    min(target, limit), as a fraction of the phase size.
    """
    from ..mix.sample import largest_remainder

    manifest = {"production": mix.production, **mix.phases}
    counts = records.groupby(["phase", "bucket"]).size().to_dict() if len(records) else {}
    rows = []
    for phase, ph in manifest.items():
        weights = {b: w for b, w in ph.weights.items() if w > 0}
        targets = largest_remainder(weights, ph.size)
        comp = (composition.get(phase) or {}).get("buckets") or {}
        per = {}
        for b, w in weights.items():
            limit = int((comp.get(b) or {}).get("limit", targets[b]))
            n = int(counts.get((phase, b), 0))
            per[b] = {"weight": w, "target": targets[b], "limit": limit, "count": n, "saturated": n >= limit}
        open_w = sum(v["weight"] for v in per.values() if not v["saturated"])
        open_n = sum(v["count"] for v in per.values() if not v["saturated"])
        for b, v in sorted(per.items()):
            gap = 0.0
            if not v["saturated"] and open_w > 0 and open_n > 0:
                gap = abs(v["count"] / open_n - v["weight"] / open_w)
            rows.append({"phase": phase, "bucket": b, "row": f"{phase}/{b}", "id": f"{phase}/{b}",
                         "count": v["count"], "target": v["target"], "limit": v["limit"],
                         "saturated": v["saturated"], "share_gap": round(gap, 6),
                         "shortfall": round(max(0, min(v["target"], v["limit"]) - v["count"]) / ph.size, 6)})
        extra = {b for (p, b) in counts if p == phase} - set(weights)
        for b in sorted(extra):
            rows.append({"phase": phase, "bucket": b, "row": f"{phase}/{b}", "id": f"{phase}/{b}",
                         "count": int(counts[(phase, b)]), "target": 0, "limit": 0, "saturated": True,
                         "share_gap": 1.0, "shortfall": 0.0})
    return pd.DataFrame(rows)
