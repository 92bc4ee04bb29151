"""In-process Hugging Face causal LM (default SmolLM2-135M-Instruct), batched and offline.

Chat requests go through the tokenizer's chat template; completion requests (base models) are
tokenised as-is with no special tokens added. Greedy when temperature is 0, otherwise seeded
sampling (the request's `seed`, default 0) — the same inputs give the same text.
"""

from __future__ import annotations

import logging
from typing import Any

from .config import TeacherParams
from .guided import decode, guided_fields, plan
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
        _MODELS[key] = (model, tok)
    return _MODELS[key]


def render(tok: Any, mode: str, payload: Any) -> str:
    """The exact text the model sees."""
    if mode == "chat":
        return tok.apply_chat_template(payload, add_generation_prompt=True, tokenize=False)
    return payload


def count_tokens(tok: Any, mode: str, payload: Any) -> int:
    return len(tok(render(tok, mode, payload), add_special_tokens=False)["input_ids"])


def _guided(teacher: TeacherParams, model: Any, tok: Any, prompt: str, steps: list) -> Outcome:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(teacher.threads)
    try:
        text, n_in, n_out = decode(model, tok, prompt, steps)
    finally:
        torch.set_num_threads(before)
    return Outcome(text=text, finish_reason="stop", prompt_tokens=n_in, completion_tokens=n_out, model=teacher.model)


def _cut_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    best = None
    for s in stops:
        if s:
            i = text.find(s)
            if i >= 0 and (best is None or i < best):
                best = i
    return (text, False) if best is None else (text[:best], True)


def generate(teacher: TeacherParams, mode: str, payloads: list[Any], gen: dict, schema: dict | None = None
             ) -> list[Outcome]:
    """Generate for prompts that share `gen` (one padded batch). A structured request whose schema
    `guided.guided_fields` accepts is decoded under that schema instead, so it always parses."""
    import torch

    try:
        model, tok = load(teacher)
    except Exception as e:  # noqa: BLE001 - a model that cannot load fails its requests, one line
        raise CallError("local_error", str(e).splitlines()[0][:200]) from None
    texts = [render(tok, mode, p) for p in payloads]
    fields = guided_fields(schema)
    if fields is not None:
        steps = plan(tok, fields)
        return [_guided(teacher, model, tok, t, steps) for t in texts]
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
    max_new = int(gen.get("max_tokens") or 256)
    temperature = float(gen.get("temperature") or 0.0)
    stops = gen.get("stop") or []
    if isinstance(stops, str):
        stops = [stops]
    kw: dict[str, Any] = {"max_new_tokens": max_new, "pad_token_id": tok.pad_token_id}
    if temperature > 0:
        kw.update(do_sample=True, temperature=temperature, top_p=float(gen.get("top_p") or 1.0))
        if gen.get("top_k"):
            kw["top_k"] = int(gen["top_k"])
    else:
        kw.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    if gen.get("repetition_penalty"):
        kw["repetition_penalty"] = float(gen["repetition_penalty"])
    if stops:
        kw.update(stop_strings=list(stops), tokenizer=tok)
    torch.manual_seed(int(gen.get("seed") or 0))
    before = torch.get_num_threads()
    torch.set_num_threads(teacher.threads)  # oversubscribed OpenMP threads spin: fixed, small, restored
    try:
        with torch.inference_mode():
            out = model.generate(**enc, **kw)
    finally:
        torch.set_num_threads(before)
    n_in = enc["input_ids"].shape[1]
    cfg_eos = getattr(model.generation_config, "eos_token_id", None)
    eos_ids = {tok.eos_token_id} | set(cfg_eos if isinstance(cfg_eos, (list, tuple)) else [cfg_eos])
    results = []
    for row in range(len(payloads)):
        prompt_tokens = int(enc["attention_mask"][row].sum())
        gen_ids = out[row, n_in:].tolist()
        ended = False
        for j, t in enumerate(gen_ids):
            if t in eos_ids or t == tok.pad_token_id:
                gen_ids, ended = gen_ids[:j], True
                break
        text = tok.decode(gen_ids, skip_special_tokens=True)
        text, stopped = _cut_at_stop(text, stops)
        finish = "stop" if (ended or stopped or len(gen_ids) < max_new) else "length"
        results.append(Outcome(text=text, finish_reason=finish, prompt_tokens=prompt_tokens,
                               completion_tokens=len(gen_ids), model=teacher.model))
    return results
