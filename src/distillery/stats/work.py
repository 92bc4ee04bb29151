"""The per-batch step: raw lines -> measured rows or reasons, run in pool workers (or inline).

A pure function of the lines and the tokenizer, so results do not depend on the number of workers.
Workers are forked from the parent after it loaded the tokenizer, so nothing is loaded twice.
"""

from __future__ import annotations

from typing import Any

from ..core.io import BadLine, parse_line
from .lengths import TemplateLengths
from .rows import Row, text_key, to_row

REJECT = "!"   # kind of a result line that is a reject: (line, REJECT, reason, record or BadLine, detail)

_W: dict[str, Any] = {}


def init_worker(meter: TemplateLengths, max_line_bytes: int) -> None:
    _W.update(meter=meter, max_line_bytes=max_line_bytes)


def measure_lines(lines: list[tuple[int, bytes]]) -> list[tuple]:
    """(line, kind, id, own bucket, first-user key, counts) per measurable row, in line order, and
    (line, REJECT, reason, record or BadLine, detail) per line that is not one."""
    meter: TemplateLengths = _W["meter"]
    max_line_bytes: int = _W["max_line_bytes"]
    out: list[tuple | None] = []
    rows: list[tuple[int, int, Row]] = []
    for ln, raw in lines:
        obj = parse_line(raw, ln, max_line_bytes)
        if isinstance(obj, BadLine):
            out.append((ln, REJECT, obj.reason, obj, obj.detail))
            continue
        row = to_row(obj)
        if isinstance(row, str):
            out.append((ln, REJECT, row, obj, ""))
            continue
        rows.append((len(out), ln, row, obj))
        out.append(None)
    measured = meter.measure([r for _, _, r, _ in rows])
    for (i, ln, row, obj), m in zip(rows, measured):
        if isinstance(m, str):
            out[i] = (ln, REJECT, "template_error", obj, m)
        else:
            out[i] = (ln, row.kind, row.id, row.bucket, text_key(row.first_user), m)
    return out
