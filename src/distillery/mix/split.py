"""Held-out eval split by id hash: stable across runs, seeds and input order.

A record is held out when the hash of (salt, id), as a fraction of 2**64, is below
`eval_fraction`. The split is taken before any sampling, so eval ids never reach a phase.
"""

from __future__ import annotations

import xxhash

_SCALE = float(2**64)


def is_eval(record_id: str, fraction: float, salt: str) -> bool:
    if fraction <= 0:
        return False
    return xxhash.xxh3_64_intdigest(f"{salt}\x1f{record_id}".encode("utf-8")) / _SCALE < fraction
