"""The local backend: an in-process model (`provider_local`) generates a teacher's misses in padded
batches of `batch_size`, grouped by mode, generation params and schema, shortest prompts first.
Requests that differ only in their sampling seed (distill's answers per prompt) share a batch: each
row samples from its own seeded generator."""

from __future__ import annotations

import json
import time
from collections import defaultdict

from .backend import Outcomes, Services
from .config import TeacherParams
from .items import Item, prompt_bytes
from .outcome import CallError
from .progress import Progress


class LocalBackend:
    def __init__(self, services: Services, teacher: TeacherParams):
        self.s = services
        self.t = teacher

    def prepare(self) -> None:
        pass  # the model loads on first use; a model that cannot load fails its requests (local_error)

    def close(self) -> None:
        pass  # loaded models stay cached for the process (provider_local)

    def submit(self, items: list[Item], bar: Progress) -> Outcomes:
        from . import provider_local

        s, t = self.s, self.t
        out: Outcomes = {}
        groups: dict[str, list[Item]] = defaultdict(list)
        for it in items:
            shared = sorted((k, v) for k, v in it.gen.items() if k != "seed")
            groups[f"{it.mode}|{shared!r}|{json.dumps(it.schema_js, sort_keys=True)}"].append(it)
        for gk in sorted(groups):
            if s.guard.halted is not None:
                break
            group = sorted(groups[gk], key=lambda it: (prompt_bytes(it.mode, it.payload), it.key))
            for i in range(0, len(group), t.batch_size):
                if s.guard.halted is not None:
                    break
                chunk = group[i:i + t.batch_size]
                start = time.perf_counter()
                try:
                    outs = provider_local.generate(t, chunk[0].mode, [it.payload for it in chunk], chunk[0].gen,
                                                   chunk[0].schema_js,
                                                   seeds=[int(it.gen.get("seed") or 0) for it in chunk])
                except CallError as e:
                    for it in chunk:
                        out[it.index] = e
                    continue
                dt = time.perf_counter() - start
                for it, o in zip(chunk, outs):
                    it.latency += dt
                    it.attempts += 1
                    out[it.index] = (o, False)
                    s.stat(t).add_usage(o.prompt_tokens, o.completion_tokens, 0.0)
                s.guard.store_rows([(it.key, t.name, t.model, o, 0.0) for it, o in zip(chunk, outs)])
                bar.tokens(sum(o.prompt_tokens + o.completion_tokens for o in outs), 0.0)
        return out
