"""Where the mix stage's records lie, for the stages that read them back (export, stats, validate).

The order is the one readers rely on when an id appears twice: production, the held-out eval split,
then the curriculum phases by name.
"""

from __future__ import annotations

from pathlib import Path

PRODUCTION = "production"         # the phase every mix has
PRODUCTION_FILE = f"{PRODUCTION}.jsonl"
EVAL_FILE = "eval.jsonl"
PHASES_DIR = "phases"


def phase_files(mix_dir: Path) -> list[tuple[str, Path]]:
    """(phase, file) of production and every phase file that exists, production first (no eval split)."""
    files = [(PRODUCTION, mix_dir / PRODUCTION_FILE)]
    files += [(f.stem, f) for f in sorted((mix_dir / PHASES_DIR).glob("*.jsonl"))]
    return [(p, f) for p, f in files if f.exists()]


def record_files(mix_dir: Path | None) -> list[Path]:
    """Every record file of a mix folder that exists: production, eval, then the phases (none when the
    folder is missing)."""
    if mix_dir is None or not Path(mix_dir).is_dir():
        return []
    d = Path(mix_dir)
    files = [d / PRODUCTION_FILE, d / EVAL_FILE, *sorted((d / PHASES_DIR).glob("*.jsonl"))]
    return [f for f in files if f.exists()]
