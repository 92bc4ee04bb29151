"""Batched incremental decoding for local causal LMs: KV cache, left padding, stopping per row.

HF `generate` keeps every row of a padded batch computing until the longest is done. Here each step
runs only the rows still going: a row that meets EOS, a stop string or max_tokens leaves the batch, its
KV-cache rows are dropped and the padding columns no remaining row needs are trimmed, so a batch costs
about what its members cost, not B x its longest. Stop strings are checked on the decoded tail of the
row after every token. Sampling draws from one torch.Generator per row seeded with the request's
seed, so a request gives the same text whatever batch it lands in and wherever it sits in it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

_TAIL_SLACK = 8     # extra tokens decoded beyond the longest stop string (byte tokens, merges)
PREFIX_CHUNK = 64   # prompt tokens shared between rows in whole chunks of this size (`prefill`)
SHARE_PREFIXES = True   # False: every row prefilled on its own (benchmarks/bench_local.py measures the saving)


@dataclass(frozen=True)
class Sampling:
    """How the next token is chosen. temperature 0 = greedy (argmax)."""

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: float = 1.0
    seed: int = 0

    @classmethod
    def from_gen(cls, gen: dict) -> "Sampling":
        return cls(temperature=float(gen.get("temperature") or 0.0), top_p=float(gen.get("top_p") or 1.0),
                   top_k=int(gen.get("top_k") or 0),
                   repetition_penalty=float(gen.get("repetition_penalty") or 1.0), seed=int(gen.get("seed") or 0))


@dataclass
class Decoded:
    """One row's result: generated token ids (EOS excluded), text cut at the first stop string."""

    ids: list[int] = field(default_factory=list)
    text: str = ""
    finish_reason: str = "length"   # "stop" (EOS or a stop string) or "length" (max_tokens)


def choose(logits: Any, rows: list[dict], s: Sampling) -> Any:
    """Next token per active row: one argmax for a greedy batch; sampling is vectorised over the
    rows (temperature, top-k, top-p on the whole batch at once) and inverts each row's CDF at a
    uniform draw from that row's own generator, so a row's text does not depend on its batch. One
    draw per token: per-row `multinomial` calls cost ~17% of a sampled batch-64 run."""
    import torch

    if s.temperature <= 0 and s.repetition_penalty == 1.0:
        return logits.argmax(-1)
    lg = logits.float()
    if s.repetition_penalty != 1.0:
        lg = lg.clone()
        for i, row in enumerate(rows):
            seen = torch.tensor(sorted(set(row["prompt"]) | set(row["out"])), device=lg.device)
            vals = lg[i, seen]
            lg[i, seen] = torch.where(vals < 0, vals * s.repetition_penalty, vals / s.repetition_penalty)
    if s.temperature <= 0:
        return lg.argmax(-1)
    lg = lg / s.temperature
    if 0 < s.top_k < lg.shape[-1]:
        kth = torch.topk(lg, s.top_k, dim=-1).values[:, -1:]
        lg = lg.masked_fill(lg < kth, float("-inf"))
    if s.top_p < 1.0:
        sorted_lg, order = torch.sort(lg, dim=-1, descending=True)
        probs = torch.softmax(sorted_lg, -1)
        drop = (probs.cumsum(-1) - probs) >= s.top_p    # keep the smallest prefix reaching top_p
        drop[:, 0] = False
        lg = lg.scatter(-1, order, sorted_lg.masked_fill(drop, float("-inf")))
    cdf = torch.softmax(lg, -1).double().cumsum(-1)
    u = torch.cat([torch.rand(1, generator=row["gen"], dtype=torch.float64, device=lg.device) for row in rows])
    picks = torch.searchsorted(cdf, (u * cdf[:, -1])[:, None], right=True)[:, 0]
    return picks.clamp(max=lg.shape[-1] - 1)


def _stopped(tok: Any, out: list[int], stops: list[str], tail_tokens: int) -> bool:
    if not stops:
        return False
    tail = tok.decode(out[-tail_tokens:], skip_special_tokens=True)
    return any(st in tail for st in stops)


def cut_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    """`text` up to the earliest stop string, and whether one was found."""
    hits = [i for i in (text.find(st) for st in stops if st) if i >= 0]
    return (text[:min(hits)], True) if hits else (text, False)


@functools.cache
def _preallocated_layer() -> type:
    """The cache-layer class, made once on first use (it subclasses a transformers class, which this
    module imports only when a model runs)."""
    import torch
    from transformers.cache_utils import DynamicLayer

    class PreallocatedLayer(DynamicLayer):
        """Keys and values written in place into buffers of `capacity` positions."""

        def __init__(self, capacity: int) -> None:
            super().__init__()
            self.capacity = capacity

        def lazy_initialization(self, key_states: Any, value_states: Any) -> None:
            super().lazy_initialization(key_states, value_states)
            b, h, _, d = key_states.shape
            self.kbuf = key_states.new_empty((b, h, self.capacity, d))
            self.vbuf = value_states.new_empty((b, h, self.capacity, d))
            self.filled = 0

        def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            end = self.filled + key_states.shape[-2]
            if end > self.kbuf.shape[-2]:       # never when capacity is right; stay correct anyway
                self.kbuf, self.vbuf = (self._grown(buf, end) for buf in (self.kbuf, self.vbuf))
            self.kbuf[:, :, self.filled:end] = key_states
            self.vbuf[:, :, self.filled:end] = value_states
            self.filled = end
            self._view()
            return self.keys, self.values

        @staticmethod
        def _grown(buf: Any, end: int) -> Any:
            b, h, n, d = buf.shape
            return torch.cat([buf, buf.new_empty((b, h, max(end, 2 * n) - n, d))], dim=2)

        def allocate(self, like: Any, rows: int, width: int) -> None:
            """Buffers for `rows` rows shaped like the cache tensor `like`, with `width` zeroed positions
            filled (a prefix `place` writes into; zeros where no row writes, so a masked hole holds no
            NaN for attention to multiply by its zero weight)."""
            _, h, _, d = like.shape
            self.lazy_initialization(like.new_zeros((rows, h, 0, d)), like.new_zeros((rows, h, 0, d)))
            self.kbuf[:, :, :width] = 0
            self.vbuf[:, :, :width] = 0
            self.filled = width
            self._view()

        def place(self, rows: Any, start: int, keys: Any, values: Any) -> None:
            """Write `keys`/`values` (len(rows) x heads x n x dim) at positions start..start+n of `rows`."""
            end = start + keys.shape[-2]
            self.kbuf[rows, :, start:end] = keys
            self.vbuf[rows, :, start:end] = values

        def keep_rows(self, keep: Any, start: int) -> None:
            """Rows `keep` only, without the first `start` positions (padding in every kept row)."""
            self.kbuf = self.kbuf.index_select(0, keep)[:, :, start:]
            self.vbuf = self.vbuf.index_select(0, keep)[:, :, start:]
            self.filled -= start
            self._view()

        def compact(self, dst: Any, src: Any, rows: int, start: int) -> None:
            """Keep the first `rows` rows after copying rows `src` into rows `dst`, without the first
            `start` positions. Only the moved rows are copied: a finished row's slot is refilled by one
            from the end, where `keep_rows` would copy every remaining row (at batch 64, ~7% of a sampled
            distill run went to that copy)."""
            if src is not None:
                self.kbuf[dst] = self.kbuf[src]
                self.vbuf[dst] = self.vbuf[src]
            self.kbuf, self.vbuf = self.kbuf[:rows, :, start:], self.vbuf[:rows, :, start:]
            self.filled -= start
            self._view()

        def crop(self, tokens_to_remove: int) -> None:
            """Forget the last -tokens_to_remove positions (guided decoding's probes)."""
            self.filled += min(0, tokens_to_remove)
            self._view()

        def _view(self) -> None:
            self.keys, self.values = self.kbuf[:, :, :self.filled], self.vbuf[:, :, :self.filled]

    return PreallocatedLayer


def kv_cache(model: Any, capacity: int) -> Any:
    """A KV cache whose layers write each step into buffers sized for the whole batch run.

    transformers' DynamicCache concatenates every layer's keys and values at every step, copying the
    whole cache 60 times per token (at batch 64, ~7% of the decode time, plus the allocator's churn).
    Here each layer allocates `capacity` positions once (prompt width + max_new) and hands attention
    a view of the filled part."""
    from transformers.cache_utils import Cache

    layer = _preallocated_layer()
    return Cache(layers=[layer(capacity) for _ in range(model.config.num_hidden_layers)])


def left_padded(tok: Any, chunks: list[list[int]], starts: list[int] | None = None) -> tuple[Any, Any, Any]:
    """(ids, attention mask, positions), rows x the longest chunk, with each row's tokens aligned
    right: every row's last token sits in the last column, so one forward pass gives each row's
    next-token logits. Masked holes go before a shorter row's tokens; row r's positions continue
    from `starts[r]` (default 0), so a chunk can extend a row already in a KV cache."""
    import torch

    n, width = len(chunks), max(len(c) for c in chunks)
    starts = starts or [0] * n
    ids = torch.full((n, width), tok.pad_token_id if tok.pad_token_id is not None else 0, dtype=torch.long)
    mask = torch.zeros((n, width), dtype=torch.long)
    pos = torch.tensor(starts, dtype=torch.long)[:, None].repeat(1, width)
    for r, c in enumerate(chunks):
        if c:
            ids[r, width - len(c):] = torch.tensor(c, dtype=torch.long)
            mask[r, width - len(c):] = 1
            pos[r, width - len(c):] = torch.arange(starts[r], starts[r] + len(c))
    return ids, mask, pos


def prefill(model: Any, tok: Any, prompts: list[list[int]], extra: int) -> tuple[Any, Any, Any, Any]:
    """Run token-id prompts into a new KV cache with room for `extra` more positions. Returns (cache,
    attention mask, each row's next position, each row's next-token logits).

    Identical prompts (distill's sampled answers to one question) run once and are copied into their
    rows. A prompt's whole `PREFIX_CHUNK`-token chunks from its start (all but a last 1..64-token tail) are
    computed once per distinct prefix, the way vLLM's prefix caching shares blocks: a judge's rubric,
    a question asked for four sampled answers, a system prompt. Level k runs chunk k of every distinct
    prefix at once, on a cache of its level-(k-1) parents, so no chunk holds padding. Each row's
    prefix is then placed right-aligned in the batch cache (masked holes before a shorter one) and
    the tails run together, left-padded, as any batch does. Which rows share a chunk changes none of
    its sums; a row's logits equal a one-shot prefill's up to float rounding (~4e-5 measured), and the
    tests hold its text the same in any batch. `SHARE_PREFIXES = False` runs every whole prompt as a tail."""
    import torch

    distinct: dict[tuple, int] = {}
    rows = [distinct.setdefault(tuple(p), len(distinct)) for p in prompts] if SHARE_PREFIXES else []
    if len(distinct) < len(rows):
        cache, mask, next_pos, logits = prefill(model, tok, [list(p) for p in distinct], extra)
        keep = torch.tensor(rows, dtype=torch.long, device=model.device)
        for layer in cache.layers:
            layer.keep_rows(keep, 0)
        return cache, mask.index_select(0, keep), next_pos.index_select(0, keep), logits.index_select(0, keep)
    dev, width = model.device, PREFIX_CHUNK
    # chunks before the tail, which keeps >= 1 token (none when sharing is off)
    whole = [max(0, (len(p) - 1) // width) if SHARE_PREFIXES else 0 for p in prompts]
    levels = max(whole)
    tails = [p[k * width:] for p, k in zip(prompts, whole)]
    span = levels * width
    cache = kv_cache(model, span + max(len(t) for t in tails) + extra)
    mask = torch.zeros((len(prompts), span), dtype=torch.long, device=dev)
    if levels:
        _shared_prefixes(model, prompts, whole, cache, mask)
    ids, tail_mask, pos = (t.to(dev) for t in left_padded(tok, tails, [k * width for k in whole]))
    mask = torch.cat([mask, tail_mask], dim=1)
    logits = model(input_ids=ids, attention_mask=mask, position_ids=pos, past_key_values=cache, use_cache=True,
                   logits_to_keep=1).logits[:, -1, :]
    return cache, mask, pos[:, -1] + 1, logits


def _shared_prefixes(model: Any, prompts: list[list[int]], whole: list[int], cache: Any, mask: Any) -> None:
    """Fill `cache` (allocated here) and `mask` with each row's whole chunks, right-aligned, each
    distinct prefix computed once (`prefill`)."""
    import torch

    dev, width = model.device, PREFIX_CHUNK
    levels, span = max(whole), max(whole) * width
    shared = None                                   # the cache of the previous level's distinct prefixes
    parents: dict[tuple, int] = {}
    for k in range(levels):
        rows = [r for r, n in enumerate(whole) if n > k]
        nodes: dict[tuple, int] = {}
        for r in rows:
            nodes.setdefault(tuple(prompts[r][:(k + 1) * width]), len(nodes))
        if shared is None:
            shared = kv_cache(model, span)
        else:
            keep = torch.tensor([parents[node[:k * width]] for node in nodes], dtype=torch.long, device=dev)
            for layer in shared.layers:
                layer.keep_rows(keep, 0)
        ids = torch.tensor([node[k * width:] for node in nodes], dtype=torch.long, device=dev)
        pos = torch.arange(k * width, (k + 1) * width, device=dev).repeat(len(nodes), 1)
        model(input_ids=ids, attention_mask=torch.ones((len(nodes), (k + 1) * width), dtype=torch.long, device=dev),
              position_ids=pos, past_key_values=shared, use_cache=True, logits_to_keep=1)
        if k == 0:
            for layer, src in zip(cache.layers, shared.layers):
                layer.allocate(src.keys, len(prompts), span)
        done = [r for r in rows if whole[r] == k + 1]
        if done:
            at = span - (k + 1) * width
            idx = torch.tensor([nodes[tuple(prompts[r][:(k + 1) * width])] for r in done], dtype=torch.long, device=dev)
            put = torch.tensor(done, dtype=torch.long, device=dev)
            for layer, src in zip(cache.layers, shared.layers):
                layer.place(put, at, src.keys.index_select(0, idx), src.values.index_select(0, idx))
            mask[put, at:] = 1
        parents = nodes


def _compact(cache: Any, mask: Any, keep: list[int]) -> tuple[Any, list[int]]:
    """Keep rows `keep` (ascending) of the KV cache and mask, and trim the left columns that are padding in
    every kept row. A kept row beyond the new row count moves into a finished row's slot, so rows change
    places: returns (mask, for each new row the old row it holds)."""
    import torch

    m, kept = len(keep), set(keep)
    order = list(range(m))
    moves = list(zip((j for j in range(m) if j not in kept), (j for j in keep if j >= m)))
    dst = src = None
    if moves:
        for d, s_ in moves:
            order[d] = s_
        dst, src = (torch.tensor(x, dtype=torch.long, device=mask.device) for x in zip(*moves))
        mask[dst] = mask[src]           # in place: the step's mask is a fresh tensor (torch.cat) nothing else holds
    mask = mask[:m]
    cols = mask.any(0).nonzero()
    start = int(cols[0]) if len(cols) else 0
    for layer in cache.layers:
        layer.compact(dst, src, m, start)
    return mask[:, start:], order


def decode_batch(model: Any, tok: Any, prompts: list[list[int]], max_new: int, sampling: Sampling,
                 stops: list[str] | None = None, eos_ids: set[int] | None = None,
                 seeds: list[int] | None = None) -> list[Decoded]:
    """Generate for token-id prompts together; returns one `Decoded` per prompt, in order. `seeds`:
    each row's sampling seed (requests that differ only in their seed share a batch); default
    `sampling.seed` for every row."""
    import torch

    stops = [st for st in (stops or []) if st]
    eos_ids = set(eos_ids or ())
    max_new = max(1, int(max_new))
    tail_tokens = max((len(st) for st in stops), default=0) + _TAIL_SLACK
    n = len(prompts)
    dev = model.device
    seeds = seeds or [sampling.seed] * n
    rows = [{"prompt": p, "out": [], "gen": torch.Generator(device=dev).manual_seed(seed)}
            for p, seed in zip(prompts, seeds)]
    results = [Decoded() for _ in prompts]
    active = list(range(n))
    with torch.inference_mode():
        cache, mask, next_pos, logits = prefill(model, tok, prompts, max_new)
        while active:
            picks = choose(logits, [rows[r] for r in active], sampling).tolist()
            keep = []
            for j, (r, t) in enumerate(zip(active, picks)):
                row, res = rows[r], results[r]
                if t in eos_ids:
                    res.finish_reason = "stop"
                    continue
                row["out"].append(t)
                if _stopped(tok, row["out"], stops, tail_tokens):
                    res.finish_reason = "stop"
                elif len(row["out"]) >= max_new:
                    res.finish_reason = "length"
                else:
                    keep.append(j)
            if not keep:
                break
            order = keep
            if len(keep) < len(active):
                mask, order = _compact(cache, mask, keep)
                next_pos = next_pos.index_select(0, torch.tensor(order, dtype=torch.long, device=dev))
                active = [active[j] for j in order]
            step = torch.tensor([picks[j] for j in order], dtype=torch.long, device=dev)
            mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=1)
            logits = model(input_ids=step[:, None], attention_mask=mask, position_ids=next_pos[:, None],
                           past_key_values=cache, use_cache=True).logits[:, -1, :]
            next_pos = next_pos + 1
    for row, res in zip(rows, results):
        res.ids = row["out"]
        text = tok.decode(row["out"], skip_special_tokens=True)
        res.text, _ = cut_at_stop(text, stops)
    return results
