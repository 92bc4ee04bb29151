"""prompt_dedup: the prompts the teachers will answer, deduplicated and decontaminated before any call.

Why a stage of its own: distill, completion and the judge pay per request, and the final dedup stage
only removes duplicates and benchmark items after they were answered and judged. This runs the dedup
library (exact xxh3 keys, MinHash-LSH near-dup, the eval-set decontamination of dedup.decontaminate)
on the prompt key of the ingested records and writes the survivors, unchanged, for the generation
stages. Removed records go to quarantine as duplicate_prompt / near_duplicate_prompt /
contaminated_prompt with the kept id (or eval item) in `duplicate_of`; the metrics count the calls
the generation stages would have sent for them and what those would have cost. A copy whose request
would be byte-identical to its kept record's is counted apart (`identical_requests`): the LLM cache
answers those once anyway, so they are no saved call.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import orjson
import xxhash

from ..core.errors import InputError
from ..core.io import atomic_file, input_files
from .config import DedupParams

STAGE = "prompt_dedup"
# the dedup engine's reasons -> what they mean here (the removed record is a prompt nobody will answer)
REASONS = {"exact_duplicate": "duplicate_prompt", "near_duplicate": "near_duplicate_prompt",
           "contaminated": "contaminated_prompt"}
CHARS_PER_TOKEN = 4.0  # prompt tokens of the cost estimate: ~4 characters per token (English, BPE)


def dedup_params(params: Any) -> DedupParams:
    """The dedup section's settings with prompt_dedup's own on top, keyed on the prompt."""
    pd, base = params.prompt_dedup, params.dedup
    decontam = base.decontaminate.model_copy(update={"enabled": pd.decontaminate})
    semantic = base.semantic.model_copy(update={"enabled": False})
    return base.model_copy(update={
        "key": "prompt", "exact": pd.exact, "near": pd.near, "threshold": pd.threshold,
        "shingle_size": pd.shingle_size, "num_perm": pd.num_perm, "bands": None, "rows": None,
        "cross_source": pd.cross_source, "workers": pd.workers, "max_reject_rate": pd.max_reject_rate,
        "decontaminate": decontam, "semantic": semantic})


@dataclass
class CallPrice:
    """Calls the generation stages send for one prompt, and their USD at `prompt_tokens` tokens in."""

    calls: float
    usd_fixed: float          # output side (max_tokens) of those calls
    usd_per_prompt_token: float

    def usd(self, prompt_tokens: float) -> float:
        return self.usd_fixed + self.usd_per_prompt_token * prompt_tokens


def _price(llm: Any, name: str) -> tuple[float, float]:
    t = llm.teachers.get(name)
    return (t.price_input_per_1m / 1e6, t.price_output_per_1m / 1e6) if t is not None else (0.0, 0.0)


def call_price(params: Any) -> tuple[CallPrice, dict[str, float]]:
    """Per prompt: distill answers (responses_per_prompt x samples_per_teacher, teachers by routing
    weight), one completion, and one judge verdict per generated answer. Output tokens are max_tokens
    (an upper bound, like --dry-run's cost_usd). Also the calls per prompt of each stage."""
    d, c, j, llm = params.distill, params.synthesize.completion, params.score.judge, params.llm
    total_w = sum(d.teachers.values()) or 1.0
    n_distill = d.responses_per_prompt * d.samples_per_teacher
    d_in = sum(w / total_w * _price(llm, t)[0] for t, w in d.teachers.items())
    d_out = sum(w / total_w * _price(llm, t)[1] for t, w in d.teachers.items())
    c_in, c_out = _price(llm, c.teacher)
    n_judge = n_distill + 1 if j.teachers else 0
    j_in, j_out = _price(llm, j.teachers[0]) if j.teachers else (0.0, 0.0)
    fixed = n_distill * d_out * d.gen.max_tokens + c_out * c.gen.max_tokens + n_judge * j_out * j.gen.max_tokens
    # the judge sees the prompt too (its answer's tokens are not counted: a lower bound on that side)
    per_tok = n_distill * d_in + c_in + n_judge * j_in
    calls = {"distill": float(n_distill), "completion": 1.0, "judge": float(n_judge)}
    return CallPrice(float(sum(calls.values())), fixed, per_tok), calls


def _prompt_chars(rec: dict) -> int:
    from ..core.records import prompt_messages

    return sum(len(m.get("content") or "") for m in prompt_messages(rec) if isinstance(m, dict))


def request_key(rec: dict) -> int:
    """What a generation request is built from (prompt messages, bucket): two records with the same key
    send byte-identical requests, which the LLM cache answers once even without this stage."""
    from ..core.records import prompt_messages

    return xxhash.xxh3_64_intdigest(orjson.dumps([prompt_messages(rec), rec.get("bucket")]))


def _kept_keys(records: Path) -> dict[str, int]:
    with open(records, "rb") as fh:
        return {str(r.get("id")): request_key(r) for r in map(orjson.loads, fh) if isinstance(r, dict)}


def rename_reasons(path: Path, kept: dict[str, int]) -> dict[str, dict[str, Any]]:
    """Rewrite quarantine.jsonl with the prompt reasons; returns {reason: {count, prompt_chars, cached}}
    where `cached` counts the removed records whose request equals their kept record's (cache hits)."""
    out: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return out
    with open(path, "rb") as src, atomic_file(path) as w:
        for raw in src:
            if not raw.strip():
                continue
            rec = orjson.loads(raw)  # written by the engine's Quarantine a moment ago: valid JSON
            reason = REASONS.get(rec.get("reason"), rec.get("reason"))
            rec["reason"] = reason
            row = out.setdefault(reason, {"count": 0, "prompt_chars": 0, "cached": 0})
            body = rec.get("record")
            if isinstance(body, dict) and kept.get(str(rec.get("duplicate_of"))) == request_key(body):
                row["cached"] += 1
            elif isinstance(body, dict):
                row["count"] += 1
                row["prompt_chars"] += _prompt_chars(body)
            else:
                row["count"] += 1
            w.write(orjson.dumps(rec) + b"\n")
    return out


def run_prompt_dedup(params: Any, inputs: Sequence[str | Path], out_dir: str | Path, *,
                     plots_path: Path | None = None) -> dict[str, Any]:
    """Write OUTPUT/{records,quarantine,clusters,contamination}.jsonl; return the metrics."""
    from .engine import run_dedup

    files = input_files([str(i) for i in inputs])
    if not files:
        raise InputError(f"{', '.join(map(str, inputs))}: no records.jsonl found")
    out = Path(out_dir)
    res = run_dedup(files, out, dedup_params(params), seed=params.project.seed,
                    max_line_bytes=params.project.max_line_bytes, plots_path=plots_path, stage=STAGE)
    removed = rename_reasons(out / "quarantine.jsonl", _kept_keys(out / "records.jsonl"))
    m = dict(res.metrics)
    price, per_stage = call_price(params)
    skipped = {r: removed.get(r, {"count": 0, "prompt_chars": 0, "cached": 0}) for r in REASONS.values()}
    n_skipped = sum(v["count"] for v in skipped.values())   # byte-identical requests excluded: cache hits
    tokens = sum(v["prompt_chars"] for v in skipped.values()) / CHARS_PER_TOKEN
    return {
        "prompts_in": m["records_in"], "unique_prompts": m["records_out"],
        "duplicates_skipped": m["exact_duplicates"] + m["near_duplicates"],
        "exact_duplicates": m["exact_duplicates"], "near_duplicates": m["near_duplicates"],
        "contaminated_skipped": m["contaminated"], "contaminated_by_set": m["contaminated_by_set"],
        "calls_per_prompt": per_stage,
        "identical_requests": sum(v["cached"] for v in skipped.values()),
        "calls_saved": round(n_skipped * price.calls),
        "usd_saved_estimate": round(n_skipped * price.usd_fixed + price.usd_per_prompt_token * tokens, 6),
        "bad_input": m["bad_input"], "bad_input_by_reason": m["bad_input_by_reason"],
        "clusters": m["clusters"], "largest_cluster": m["largest_cluster"],
        "records_in": m["records_in"], "records_out": m["records_out"],
    }
