"""Local teachers on GPU nodes: Ray Data LLM batch inference (vLLM) fills the response cache.

The answers land in the same SQLite cache under the same request keys the `Engine` computes, so
the normal fan-out that follows serves them as cache hits (same ChatResult shape, same lineage,
same failed-request handling). Chat requests only; completion-mode requests and anything vLLM did
not answer fall through to the in-process provider on the workers.
Only used when the cluster has GPUs and vLLM is installed (`generate_ray.gpu_path_unavailable`).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

from ..llm.engine import Engine
from ..llm.types import ChatRequest

log = logging.getLogger(__name__)


def vllm_rows(eng: Engine, requests: list[ChatRequest]) -> dict[str, list[dict[str, Any]]]:
    """Per local teacher, the vLLM input rows of the chat requests not yet cached (each distinct key
    once), under the request keys the engine computes: what vLLM answers lands where the fan-out
    that follows looks it up. Schema and completion requests, and other providers, are left out."""
    todo: dict[str, list[dict[str, Any]]] = defaultdict(list)
    items = [it for it in eng.items(requests)
             if it.teacher.provider == "local" and it.mode == "chat" and it.req.schema is None]
    cached = eng.cache.get_many({it.key for it in items})
    seen: set[str] = set()
    for it in items:
        if it.key in seen or it.key in cached:
            continue
        seen.add(it.key)
        todo[it.teacher.name].append({"key": it.key, "messages": it.payload,
                                      "temperature": float(it.gen.get("temperature", 0.0)),
                                      "top_p": float(it.gen.get("top_p", 1.0)),
                                      "max_tokens": int(it.gen.get("max_tokens") or 256)})
    return dict(todo)


def fill_cache_with_vllm(ray: Any, llm: Any, stage: str, requests: list[ChatRequest]) -> int:
    """Answer the uncached chat requests of local teachers with vLLM; returns how many were cached."""
    from ray.data.llm import build_processor, vLLMEngineProcessorConfig

    from ..models import resolve_model_path

    gpus = int(ray.cluster_resources().get("GPU", 0))
    eng = Engine(llm, stage, progress=False)
    try:
        todo = vllm_rows(eng, requests)
        done = 0
        for name, rows in sorted(todo.items()):
            t = llm.teacher(name)
            cfg = vLLMEngineProcessorConfig(model_source=str(resolve_model_path(t.model)), concurrency=max(1, gpus),
                                            batch_size=t.batch_size, engine_kwargs={"dtype": t.dtype})
            proc = build_processor(
                cfg,
                preprocess=lambda row: {"messages": row["messages"], "sampling_params": {
                    "temperature": row["temperature"], "top_p": row["top_p"], "max_tokens": row["max_tokens"]}},
                postprocess=lambda row: {"key": row["key"], "text": row["generated_text"],
                                         "pt": int(row.get("num_input_tokens") or 0),
                                         "ct": int(row.get("num_generated_tokens") or 0),
                                         "max_tokens": row["max_tokens"]})
            for out in proc(ray.data.from_items(rows)).iter_rows():
                finish = "length" if out["ct"] >= out["max_tokens"] else "stop"
                eng.cache.put(out["key"], t.name, t.model, out["text"], finish, out["pt"], out["ct"], 0.0, stage)
                done += 1
            log.info("vllm: %s answered %d requests on %d GPU(s)", name, len(rows), gpus)
        return done
    finally:
        eng.close()
