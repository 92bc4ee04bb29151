"""The local sampler (`decoding.choose`) on hand-made logits: it draws from the distribution the
params ask for (temperature, top-k, top-p), and a row's draws depend on its seed only, not its batch."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from distillery.llm.decoding import Sampling, choose  # noqa: E402

PROBS = [0.5, 0.3, 0.2, 0.0]


def _rows(n: int, seed: int) -> list[dict]:
    return [{"prompt": [], "out": [], "gen": torch.Generator().manual_seed(seed + i)} for i in range(n)]


def _frequencies(s: Sampling, draws: int = 20_000, probs: list[float] = PROBS) -> list[float]:
    logits = torch.log(torch.tensor([probs] * draws))
    picks = choose(logits, _rows(draws, 0), s).tolist()
    return [picks.count(i) / draws for i in range(len(probs))]


def test_sampling_follows_the_softmax():
    got = _frequencies(Sampling(temperature=1.0))
    assert got[3] == 0.0
    assert all(abs(g - p) < 0.015 for g, p in zip(got, PROBS)), got


def test_temperature_sharpens_and_top_k_top_p_cut_the_tail():
    sharp = _frequencies(Sampling(temperature=0.5))     # p^2 renormalised: 0.66, 0.24, 0.11
    want = [p * p / sum(q * q for q in PROBS) for p in PROBS]
    assert all(abs(g - w) < 0.015 for g, w in zip(sharp, want)), sharp
    top2 = _frequencies(Sampling(temperature=1.0, top_k=2))
    assert top2[2] == 0.0 and abs(top2[0] - 0.625) < 0.015
    nucleus = _frequencies(Sampling(temperature=1.0, top_p=0.6))  # 0.5 + 0.3 reaches 0.6: token 2 is cut
    assert nucleus[2] == 0.0 and abs(nucleus[0] - 0.625) < 0.015
    assert _frequencies(Sampling(temperature=1.0, top_p=0.4)) == [1.0, 0.0, 0.0, 0.0]


def test_a_rows_draw_depends_on_its_seed_not_its_batch():
    logits = torch.randn(6, 50, generator=torch.Generator().manual_seed(3))
    s = Sampling(temperature=0.8, top_p=0.9)
    rows = _rows(6, 10)
    together = choose(logits, rows, s).tolist()
    alone = [choose(logits[i:i + 1], _rows(1, 10 + i), s).item() for i in range(6)]
    assert together == alone
    reordered = choose(logits.flip(0), _rows(6, 10)[::-1], s).tolist()
    assert reordered[::-1] == together


def test_greedy_and_repetition_penalty():
    logits = torch.tensor([[2.0, 1.9, -1.0]])
    assert choose(logits, _rows(1, 0), Sampling()).tolist() == [0]
    row = {"prompt": [0], "out": [], "gen": torch.Generator().manual_seed(0)}
    assert choose(logits, [row], Sampling(repetition_penalty=1.2)).tolist() == [1]   # 2.0 / 1.2 < 1.9
    assert math.isclose(logits[0, 0].item(), 2.0)                                    # the caller's logits untouched
