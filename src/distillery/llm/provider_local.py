"""In-process Hugging Face causal LM (default SmolLM2-135M-Instruct), batched and offline.

Chat requests go through the tokenizer's chat template; completion requests (base models) are
tokenised as-is with no special tokens added. Greedy when temperature is 0, otherwise seeded
sampling (the request's `seed`, default 0, one generator per row): the same request gives the same
text in any batch. Torch uses `threads` CPU threads (default: every core), set once when the model loads.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from .. import models  # noqa: F401 - sets the OpenMP wait policy before torch loads
from .config import TeacherParams
from .decoding import Sampling, decode_batch
from .guided import decode_batch as decode_guided
from .guided import guided_fields, plan
from .outcome import CallError, Outcome

log = logging.getLogger(__name__)

_MODELS: dict[tuple, tuple[Any, Any]] = {}


def load(teacher: TeacherParams) -> tuple[Any, Any]:
    """(model, tokenizer), loaded once per process. "smollm2" uses data/models/smollm2 when present."""
    key = (teacher.model, teacher.dtype, teacher.device)
    if key not in _MODELS:
        from ..models import load_causal_lm, load_tokenizer

        tok = load_tokenizer(teacher.model)
        tok.padding_side = "left"
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        model = load_causal_lm(teacher.model, dtype=teacher.dtype, device=teacher.device)
        _set_threads(teacher.threads)
        _MODELS[key] = (model, tok)
    return _MODELS[key]


def cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _set_threads(threads: int | None) -> None:
    """One batch uses all the cores (or `threads`); set once per process, not per call: changing the
    OpenMP pool between calls costs more than a short batch."""
    import torch

    n = threads or cores()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


def render(tok: Any, mode: str, payload: Any) -> str:
    """The exact text the model sees."""
    if mode == "chat":
        return tok.apply_chat_template(payload, add_generation_prompt=True, tokenize=False)
    return payload


def count_tokens(tok: Any, mode: str, payload: Any) -> int:
    return len(tok(render(tok, mode, payload), add_special_tokens=False)["input_ids"])


def _eos_ids(model: Any, tok: Any) -> set[int]:
    cfg = getattr(model.generation_config, "eos_token_id", None)
    return {i for i in ({tok.eos_token_id} | set(cfg if isinstance(cfg, (list, tuple)) else [cfg])) if i is not None}


def generate(teacher: TeacherParams, mode: str, payloads: list[Any], gen: dict, schema: dict | None = None,
             seeds: list[int] | None = None) -> list[Outcome]:
    """Generate for prompts that share `gen` (but for each row's sampling seed, `seeds`; default
    `gen["seed"]`), as one batch whose finished rows leave it
    (`decoding.decode_batch`). A structured request whose schema `guided.guided_fields` accepts is
    decoded under that schema instead, so it always parses."""
    try:
        model, tok = load(teacher)
    except Exception as e:  # noqa: BLE001 - a model that cannot load fails its requests, one line
        raise CallError("local_error", str(e).splitlines()[0][:200]) from None
    texts = [render(tok, mode, p) for p in payloads]
    prompts = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    fields = guided_fields(schema)
    if fields is not None:
        done = decode_guided(model, tok, prompts, plan(tok, fields))
        return [Outcome(text=text, finish_reason="stop", prompt_tokens=len(p), completion_tokens=n_out,
                        model=teacher.model) for p, (text, n_out) in zip(prompts, done)]
    stops = gen.get("stop") or []
    if isinstance(stops, str):
        stops = [stops]
    outs = decode_batch(model, tok, prompts, int(gen.get("max_tokens") or 256), Sampling.from_gen(gen),
                        stops=list(stops), eos_ids=_eos_ids(model, tok), seeds=seeds)
    return [Outcome(text=o.text, finish_reason=o.finish_reason, prompt_tokens=len(p), completion_tokens=len(o.ids),
                    model=teacher.model) for p, o in zip(prompts, outs)]
