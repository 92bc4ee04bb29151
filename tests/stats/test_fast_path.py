"""The stage's fast path (one tokenisation per row, process pool, length cache, histograms) gives exactly
what the plain path gives: one tokenizer call per text, lengths kept in lists, numpy percentiles."""

import json
import random
from pathlib import Path

import numpy as np
import pytest

from distillery.core.io import BadLine, iter_jsonl, parse_line
from distillery.stats.config import StatsParams
from distillery.stats.lengths import TemplateLengths, parts
from distillery.stats.rows import to_row
import distillery.core.parallel as parallel_mod
from distillery.core.parallel import line_blocks
from distillery.stats.run import run_stats
from distillery.stats.summary import Hist, describe

CORPUS = Path(__file__).resolve().parents[1] / "data" / "bad_records.jsonl"
WORDS = ("the model answers short questions about code, math and travel; it can be wrong sometimes "
         "déjà vu naïve 東京 Привет 😀 x² 3.14159 12,345 don't we'll I'M").split()


def _text(rnd: random.Random, lo: int, hi: int) -> str:
    out = " ".join(rnd.choice(WORDS) for _ in range(rnd.randrange(lo, hi)))
    if rnd.random() < 0.2:
        out = rnd.choice(["  ", "\n", "\n\n", " \t"]) + out + rnd.choice(["", " ", "\n", "\n\n\n"])
    if rnd.random() < 0.1:
        out += "\n```python\ndef f(x):\n    return x ** 2\n```"
    return out


def shaped_rows(n: int, seed: int = 1) -> tuple[list[dict], list[dict]]:
    """Export-shaped SFT and DPO rows: system prompts or not, 1-4 user turns, multi-turn DPO prompts,
    string-form DPO fields, empty answers, and the chat markers written inside a message."""
    rnd = random.Random(seed)
    sft, dpo = [], []
    for i in range(n):
        msgs = [{"role": "system", "content": _text(rnd, 3, 12)}] if rnd.random() < 0.4 else []
        for t in range(1 if rnd.random() < 0.6 else rnd.randrange(2, 5)):
            if t:
                msgs.append({"role": "assistant", "content": _text(rnd, 5, 40)})
            msgs.append({"role": "user", "content": _text(rnd, 2, 30)})
        answer = _text(rnd, 0, 60) if rnd.random() > 0.03 else ""
        if rnd.random() < 0.02:
            answer += " literally <|im_end|> and <|im_start|>assistant\n inside"
        if rnd.random() < 0.7:
            sft.append({"id": f"s{i}", "messages": msgs + [{"role": "assistant", "content": answer}]})
        elif rnd.random() < 0.9:
            dpo.append({"id": f"d{i}", "prompt": msgs, "chosen": [{"role": "assistant", "content": answer}],
                        "rejected": [{"role": "assistant", "content": _text(rnd, 0, 30)}]})
        else:
            dpo.append({"id": f"d{i}", "prompt": msgs[-1]["content"], "chosen": answer, "rejected": "No."})
    return sft, dpo


def reference(meter: TemplateLengths, obj: dict) -> dict[str, int]:
    """What the stage measured before the fast path: prompt, and each full sequence, tokenised apart."""
    row = to_row(obj)
    prompt = meter.lengths([row.prompt], generation_prompt=True)[0]
    fulls = meter.lengths([row.prompt + a for a in row.answers])
    return parts(row.kind, (prompt, *fulls))


@pytest.fixture(scope="module")
def meter(smollm2_path):
    return TemplateLengths(str(smollm2_path))


def _write(path: Path, rows: list) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


@pytest.mark.parametrize("fast", [True, False])
def test_measure_equals_one_call_per_text(smollm2_path, meter, fast):
    sft, dpo = shaped_rows(160)
    m = meter if fast else TemplateLengths(str(smollm2_path), fast=False)
    assert m.counter.mode == ("words" if fast else "segments")
    assert (m._direct is not None) == fast          # the template is called directly on the fast path
    objs = sft + dpo
    got = m.measure([to_row(o) for o in objs])
    for o, counts in zip(objs, got):
        assert parts(to_row(o).kind, counts) == reference(meter, o), o


def test_direct_renderer_is_not_used_when_it_renders_a_probe_differently(smollm2_path, monkeypatch):
    """apply_chat_template fills `reasoning_content` from a message's `reasoning`; the direct call does not.
    A probe holding such a message makes the two differ on this template, so the stage must keep the plain
    path (and still count as apply_chat_template does)."""
    import distillery.stats.lengths as lengths

    template = "{% for m in messages %}{{ m.role }}: {{ m.content }}{{ m.reasoning_content or '' }}\n{% endfor %}"
    probe = [[{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "reasoning": "because"}]]
    plain = TemplateLengths(str(smollm2_path), template)
    assert plain._direct is not None                # the shipped probes render alike on this template
    monkeypatch.setattr(lengths, "PROBE_CONVERSATIONS", probe)
    m = TemplateLengths(str(smollm2_path), template)
    assert m._direct is None
    assert m.render(probe, False) == [plain.tok.apply_chat_template(probe[0], chat_template=template, tokenize=False)]
    assert m.render(probe, False)[0].endswith("abecause\n")


def test_stage_fast_path_equals_the_plain_path(smollm2_path, meter, tmp_path, monkeypatch):
    """run_stats through a 2-process pool with the cache: every row's lengths equal the plain reference,
    the outputs equal a one-process run without cache byte for byte, and a rerun answers from the cache."""
    sft, dpo = shaped_rows(500)
    exp = tmp_path / "export"
    _write(exp / "sft" / "messages.jsonl", sft)
    _write(exp / "dpo" / "trl.jsonl", dpo)
    mix = tmp_path / "mix"
    _write(mix / "production.jsonl", [{"id": o["id"], "bucket": ["code", "factual"][i % 2]}
                                      for i, o in enumerate(sft + dpo)])
    base = dict(tokenizer=str(smollm2_path), batch_size=64)
    plain = StatsParams(**base, workers=1, cache_path=None, fast_count=False)
    run_stats([exp], tmp_path / "plain", plain, mix, 1 << 22, tmp_path / "plain_plots")

    monkeypatch.setattr(parallel_mod, "POOL_MIN_BYTES", 0)
    fast = StatsParams(**base, workers=2, cache_path=str(tmp_path / "cache" / "lengths.sqlite"))
    m1 = run_stats([exp], tmp_path / "fast", fast, mix, 1 << 22, tmp_path / "fast_plots")
    assert m1["run"]["workers"] == 2 and m1["run"]["rows_tokenised"] == len(sft) + len(dpo)
    for name in ("lengths.jsonl", "summary.json"):
        assert (tmp_path / "fast" / name).read_bytes() == (tmp_path / "plain" / name).read_bytes(), name
    for name in ("stats_tokens_sft.json", "stats_tokens_dpo_chosen.json", "stats_tokens_dpo_rejected.json"):
        assert (tmp_path / "fast_plots" / name).read_bytes() == (tmp_path / "plain_plots" / name).read_bytes()
    rows = [json.loads(x) for x in (tmp_path / "fast" / "lengths.jsonl").read_text().splitlines()]
    want = [reference(meter, o) for o in sft + dpo]
    assert [{k: v for k, v in r.items() if k not in ("file", "line", "id", "kind", "bucket")} for r in rows] == want
    assert {r["bucket"] for r in rows} == {"code", "factual"}

    m2 = run_stats([exp], tmp_path / "again", fast, mix, 1 << 22, None)
    assert m2["run"]["rows_from_cache"] == len(rows) and m2["run"]["rows_tokenised"] == 0
    assert (tmp_path / "again" / "lengths.jsonl").read_bytes() == (tmp_path / "fast" / "lengths.jsonl").read_bytes()

    # a mix change: some rows replaced, buckets moved. Only the new rows are tokenised, and the new
    # buckets are used for remembered rows too
    new_sft, _ = shaped_rows(40, seed=9)
    new_sft = [dict(o, id="n" + o["id"]) for o in new_sft]
    _write(exp / "sft" / "messages.jsonl", sft[::2] + new_sft)
    _write(mix / "production.jsonl", [{"id": o["id"], "bucket": "creative"} for o in sft + dpo + new_sft])
    m3 = run_stats([exp], tmp_path / "changed", fast, mix, 1 << 22, None)
    assert m3["run"]["rows_tokenised"] == len(new_sft)
    run_stats([exp], tmp_path / "changed_plain", plain, mix, 1 << 22, None)
    assert (tmp_path / "changed" / "lengths.jsonl").read_bytes() == \
        (tmp_path / "changed_plain" / "lengths.jsonl").read_bytes()
    assert set(m3["by_bucket"]) == {"creative"}

    # another template is another identity: nothing remembered applies
    other = StatsParams(**{**fast.model_dump(), "chat_template": "{% for m in messages %}{{ m['content'] }}"
                                                                   "<|im_end|>{% endfor %}"})
    m4 = run_stats([exp], tmp_path / "other", other, mix, 1 << 22, None)
    assert m4["run"]["rows_from_cache"] == 0


def test_reader_matches_iter_jsonl(tmp_path):
    """Blocks of lines + the one line parser read a file as core.io.iter_jsonl does: same lines, same records,
    same bad-line reasons (the bad-record corpus, a BOM, blank lines, an over-long line), ids exact."""
    f = tmp_path / "x.jsonl"
    f.write_bytes(b"\xef\xbb\xbf" + CORPUS.read_bytes() + b"\n\n   \n" + b'{"id": "' + b"x" * 300 + b'"}\n'
                  + b'{"id": 123456789012345678901234567890, "messages": []}\n[1, 2]\n{"a": NaN}')
    want = list(iter_jsonl(f, 200))
    got = [(ln, parse_line(raw, ln, 200)) for f_no, lines in line_blocks([f], 7) for ln, raw in lines]
    assert [ln for ln, _ in got] == [ln for ln, _ in want]
    for (ln, g), (_, w) in zip(got, want):
        if isinstance(w, BadLine):
            assert isinstance(g, BadLine) and (g.reason, g.line, g.raw, g.detail) == (w.reason, w.line, w.raw, w.detail)
        else:
            assert isinstance(g, dict) and to_row(g) == to_row(w)
    exact = [parse_line(raw, ln, 1 << 20) for _, lines in line_blocks([f], 7) for ln, raw in lines]
    assert {"id": 123456789012345678901234567890, "messages": []} in exact


def _old_describe(values, candidates=()):
    """describe() as it was, on a list (the reference for the histogram version)."""
    a = np.asarray(list(values), dtype=np.int64)
    if a.size == 0:
        return {"count": 0}
    out = {"count": int(a.size), "mean": round(float(a.mean()), 2), "min": int(a.min())}
    for p in (50, 95, 99):
        out[f"p{p}"] = int(np.percentile(a, p, method="inverted_cdf"))
    out["max"] = int(a.max())
    if candidates:
        out["truncated_share"] = {str(c): round(float((a > c).mean()), 6) for c in candidates}
    return out


def test_histograms_give_numpy_figures():
    rng = np.random.default_rng(0)
    for n in [1, 2, 3, 7, 10, 99, 100, 101, 1000, 12345]:
        for _ in range(3):
            a = rng.integers(0, rng.integers(1, 5000), n)
            h = Hist.of(a.tolist())
            assert describe(h, [10, 512, 4096]) == _old_describe(a, [10, 512, 4096])
            for p in (0.1, 1, 33.3, 50, 90, 95, 99, 99.5, 99.9, 100):
                assert h.quantile(p) == int(np.percentile(a, p, method="inverted_cdf")), (n, p)
    # histograms add up: two halves merged = the whole
    a = rng.integers(0, 3000, 5000)
    h1, h2 = Hist.of(a[:2500].tolist()), Hist.of(a[2500:].tolist())
    h1.merge(h2)
    assert describe(h1) == _old_describe(a)


def test_unusable_cache_only_costs_time(smollm2_path, tmp_path, caplog):
    """A cache path that cannot be opened (here below a file) is a warning; the stage measures every row."""
    sft, dpo = shaped_rows(20)
    f = tmp_path / "rows.jsonl"
    _write(f, sft + dpo)
    (tmp_path / "afile").write_text("x")
    p = StatsParams(tokenizer=str(smollm2_path), cache_path=str(tmp_path / "afile" / "lengths.sqlite"))
    m = run_stats([f], tmp_path / "out", p, None, 1 << 22, None)
    assert m["records_out"] == len(sft) + len(dpo) and m["run"]["rows_from_cache"] == 0
    assert "length cache" in caplog.text


def test_the_shipped_template_is_rendered_in_python_exactly_as_apply_chat_template(smollm2_path, meter):
    """SmolLM2's template is rendered by `templates.render_smollm2` (no Jinja): the same text as
    apply_chat_template on every shaped conversation (default system turn or not, chat markers inside a
    message, empty answers), with and without the generation prompt; a template differing by one
    character is not taken for it."""
    from distillery.stats.templates import SMOLLM2, render_smollm2

    assert meter._direct is render_smollm2 and meter.tok.chat_template == SMOLLM2
    sft, dpo = shaped_rows(300, seed=7)
    convs = [o["messages"] for o in sft] + [o["prompt"] for o in dpo if isinstance(o["prompt"], list)]
    for gp in (False, True):
        want = [meter.tok.apply_chat_template(c, tokenize=False, add_generation_prompt=gp) for c in convs]
        assert render_smollm2(convs, gp) == want
    other = TemplateLengths(str(smollm2_path), SMOLLM2.replace("helpful AI", "helpful  AI"))
    assert other._direct is not None and other._direct is not render_smollm2
    assert other.render(convs[:3], False) == [other._render_reference([c], False)[0] for c in convs[:3]]
