"""Paired bootstrap intervals: is a base-vs-tuned (or commit-vs-commit) difference larger than noise?

Every eval figure is a weighted mean over items: sum(w * v) / sum(w). Token-weighted loss has
v = per-token NLL of an item and w = its token count; accuracy and win rate have w = 1. A bootstrap
resample draws items with replacement, and the SAME draw is used for both sides, so the interval of
the delta is paired (item difficulty cancels). Seeded: the same inputs give the same interval.
A delta is significant only when its 95% interval excludes 0; "better" follows the metric's direction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

# metric name suffix -> lower is better (loss, perplexity); everything else: higher is better
LOWER_IS_BETTER = ("_loss", "_ppl")
VERDICTS = {1: "better", 0: "noise", -1: "worse"}


def lower_is_better(metric: str) -> bool:
    return metric.endswith(LOWER_IS_BETTER)


@dataclass
class Paired:
    """A paired comparison of one metric: side A (base / REV_A) vs side B (tuned / REV_B)."""

    metric: str
    n: int
    a: float
    b: float
    a_ci: tuple[float, float]
    b_ci: tuple[float, float]
    delta: float
    delta_ci: tuple[float, float]
    verdict: int

    @property
    def verdict_name(self) -> str:
        return VERDICTS[self.verdict]

    def flat(self, a_name: str = "base", b_name: str = "tuned") -> dict[str, float | int]:
        """The headline keys of this metric (flat numbers, what `dvc metrics diff` shows)."""
        m = self.metric
        return {f"{m}_{a_name}": self.a, f"{m}_{b_name}": self.b, f"{m}_delta": self.delta,
                f"{m}_delta_ci_low": self.delta_ci[0], f"{m}_delta_ci_high": self.delta_ci[1],
                f"{m}_verdict": self.verdict}

    def details(self, a_name: str = "base", b_name: str = "tuned") -> dict:
        return {"n": self.n, a_name: self.a, f"{a_name}_ci": list(self.a_ci), b_name: self.b,
                f"{b_name}_ci": list(self.b_ci), "delta": self.delta, "delta_ci": list(self.delta_ci),
                "verdict": self.verdict_name, "direction": "lower" if lower_is_better(self.metric) else "higher"}


def _counts(n: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) resample counts: how often each item is drawn in each bootstrap replicate."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)


def _interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    lo, hi = np.percentile(samples, [50 * (1 - level), 50 * (1 + level)])
    return round(float(lo), 6), round(float(hi), 6)


def verdict(metric: str, ci: tuple[float, float]) -> int:
    """1 = better, -1 = worse, 0 = the interval contains 0 (noise); direction from the metric name."""
    sign = 0 if ci[0] <= 0 <= ci[1] else (1 if ci[0] > 0 else -1)
    return -sign if lower_is_better(metric) else sign


def paired(metric: str, a: Sequence[float], b: Sequence[float], weights: Sequence[float] | None = None, *,
           n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> Paired | None:
    """Paired bootstrap of the weighted means of a and b over the same items (None when no items)."""
    va, vb = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if va.shape != vb.shape:
        raise ValueError(f"{metric}: {va.size} vs {vb.size} items (a paired comparison needs the same items)")
    n = va.size
    if n == 0:
        return None
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    c = _counts(n, n_boot, seed) * w          # weighted counts per replicate
    denom = c.sum(axis=1)
    sa, sb = c @ va / denom, c @ vb / denom
    ma, mb = float((w * va).sum() / w.sum()), float((w * vb).sum() / w.sum())
    dci = _interval(sb - sa, level)
    return Paired(metric, n, round(ma, 6), round(mb, 6), _interval(sa, level), _interval(sb, level),
                  round(mb - ma, 6), dci, verdict(metric, dci))


def single(values: Sequence[float], weights: Sequence[float] | None = None, *, n_boot: int = 2000, seed: int = 0,
           level: float = 0.95) -> tuple[float, tuple[float, float]] | None:
    """Weighted mean and its bootstrap interval for one side alone (e.g. a judge's agreement)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return None
    w = np.ones(v.size) if weights is None else np.asarray(weights, dtype=np.float64)
    c = _counts(v.size, n_boot, seed) * w
    s = c @ v / c.sum(axis=1)
    return round(float((w * v).sum() / w.sum()), 6), _interval(s, level)
