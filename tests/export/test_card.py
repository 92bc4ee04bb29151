"""The dataset card renders from whatever the pipeline has written so far, deterministically."""

from __future__ import annotations

import json
import re
from pathlib import Path

from distillery.export.card import build_card
from distillery.export.config import CardParams, ExportParams
from distillery.export.run import run_export

from .conftest import every_file_type

SOURCES = {"gsm8k": {"dataset": "gsm8k", "license": "MIT", "revision": "openai/grade-school-math@3101c7d",
                     "adapter": "gsm8k", "path": "data/raw/gsm8k/train.jsonl"},
           "hh": {"dataset": "hh_harmless", "license": "MIT", "revision": "anthropics/hh-rlhf@354e5c3",
                  "adapter": "hh", "path": "data/raw/hh/x.jsonl.gz"}}


def write_metrics(d: Path) -> None:
    (d / "ingest").mkdir(parents=True)
    (d / "ingest/gsm8k.json").write_text(json.dumps({"records_in": 1000, "records_out": 990, "rejected": 10,
                                                     "rejects_by_reason": {"empty_turn": 7, "too_long": 3},
                                                     "wall_s": 1.234}))
    (d / "dedup.json").write_text(json.dumps({"records_in": 990, "records_out": 900, "exact_duplicates": 40,
                                              "near_duplicates": 45, "contaminated": 5, "wall_s": 9.9,
                                              "rejects_by_reason": {"exact_duplicate": 40, "near_duplicate": 45,
                                                                    "contaminated": 5}}))
    # the stats stage's shape: a flat headline, the per-format lengths in the details file beside it
    (d / "stats.json").write_text(json.dumps({"recommended_max_length": 1024, "token_p99": 980, "wall_s": 2.5}))
    (d / "stats.details.json").write_text(json.dumps({
        "inputs": ["data/export/sft/messages.jsonl", "data/export/dpo/trl.jsonl"], "tokenizer": "smollm2",
        "recommended_from": "p99 of full sequences, rounded up to a multiple of 64",
        "overall": {"sft": {k: {"count": 900, "min": 3, "mean": 200.5, "p50": p50, "p95": p95, "p99": p99,
                                "max": mx, "truncated_share": {"1024": 0.01}}
                            for k, p50, p95, p99, mx in (("full", 210, 700, 980, 2684), ("prompt", 70, 208, 526, 2205),
                                                         ("completion", 72, 250, 430, 2012))},
                    "dpo": {k: {"count": 300, "p50": p50, "p95": p95, "p99": p99, "max": mx}
                            for k, p50, p95, p99, mx in (("prompt", 96, 372, 622, 1272), ("chosen", 192, 653, 951, 1879),
                                                         ("rejected", 183, 627, 909, 1723))}},
        "by_bucket": {f"bucket{i}": {"sft": {"full": {"p50": i}}} for i in range(40)}}))
    (d / "train_eval.json").write_text(json.dumps({"eval_loss_before": 2.31, "eval_loss_after": 1.87,
                                                   "train_runtime": 77.1}))
    (d / "synth_tools.json").write_text(json.dumps({"records_in": 50, "records_out": 48, "rejected": 2,
                                                    "rejects_by_reason": {"bad_tool_call": 2}}))
    (d / "mix.json").write_text(json.dumps({"records_out": 900, "phases": {"calibration": {"records": 100}}}))


def card(export_dir, metrics_dir, mix_dir=None, sources=SOURCES):
    return build_card(export_dir, metrics_dir, mix_dir, sources, CardParams())


def test_card_falls_back_to_mix_metrics(tmp_path):
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics/mix.json").write_text(json.dumps({"records_out": 900, "wall_s": 3.2,
                                                           "phases": {"calibration": {"records": 100}}}))
    text = card(tmp_path / "export", tmp_path / "metrics", tmp_path / "no-mix")
    assert "| phases.calibration.records | 100 |" in text and "Source: `metrics/mix.json`." in text
    assert "3.2" not in text


def test_card_without_any_metrics_says_not_run(tmp_path):
    text = card(tmp_path / "export", tmp_path / "metrics")
    for section in ("## Files", "## Composition", "## Sources", "## Generation models", "## Filters and rejects",
                    "## Deduplication and decontamination", "## Token statistics", "## Downstream evaluation",
                    "## Intended use", "## Limitations", "## How to load"):
        assert section in text
    assert "Not run (no `metrics/dedup.json`)" in text
    assert "Not run (no `metrics/stats.json`)" in text
    assert "Not run (no `metrics/train_eval.json`)" in text
    assert "| dedup | not run |" in text
    assert "| gsm8k | gsm8k | 0 | MIT | openai/grade-school-math@3101c7d |" in text


def test_card_with_metrics_and_export(mix_dir, tmp_path):
    export_dir, metrics_dir = tmp_path / "export", tmp_path / "metrics"
    m = run_export([str(mix_dir)], export_dir, ExportParams(), max_line_bytes=1 << 22)
    write_metrics(metrics_dir)
    (metrics_dir / "export.json").write_text(json.dumps(m))
    text = card(export_dir, metrics_dir, mix_dir)
    assert "| `sft/messages.jsonl` | train | 6 |" in text and "| `eval/dpo/trl.jsonl` | eval | 1 |" in text
    assert "`calibration`, `reasoning`" in text
    assert "Train split: 12 records (6 SFT, 6 preference)." in text
    assert "| red_team | 3 | 25.0% |" in text and "| refusal | 3 |" in text
    # mix composition (target vs realised), production first
    assert "**production**: 95 of 100 records." in text
    assert "| cot_math | 0.3 | 30 | 25 | 30.0% | 26.3% | 0 | short |" in text
    assert text.index("**production**") < text.index("**reasoning**")
    # sources: params licence + revision joined with what the records say
    assert "| gsm8k | gsm8k | 4 | MIT | openai/grade-school-math@3101c7d |" in text
    assert "| oasst | - | 3 | unknown | LAION-AI/Open-Assistant@f1e6ed9 |" in text
    assert "| smollm2 | 7 | distill=7 |" in text and "| judge-model | 3 | preferences=3 |" in text
    assert "| ingest/gsm8k | 1000 | 990 | 10 | empty_turn=7, too_long=3 |" in text
    assert "| export | 18 | 18 | 0 | - |" in text
    assert "| synth_tools | 50 | 48 | 2 | bad_tool_call=2 |" in text, "a stage not known to the card still shows"
    assert "| near_duplicates | 45 |" in text and "| contaminated | 5 |" in text
    assert "Recommended `max_length`: **1024** (p99 of full sequences, rounded up to a multiple of 64)." in text
    assert "| eval_loss_after | 1.87 |" in text
    assert "wall_s" not in text and "train_runtime" not in text and "1.234" not in text
    assert "`dataset: distillery_sft_messages`" in text and "Not registered: `dpo/trl.jsonl`" in text
    assert text == card(export_dir, metrics_dir, mix_dir), "the same inputs give the same card"


def test_card_script_writes_readme(mix_dir, tmp_path, run_script, monkeypatch):
    monkeypatch.setenv("DISTILLERY_TRACKING", "0")  # MLflow logging is the tracking area's test
    export_dir, metrics_dir = tmp_path / "export", tmp_path / "metrics"
    raw = tmp_path / "raw.jsonl"
    raw.write_text('{"question": "q", "answer": "a"}\n')
    params = tmp_path / "params.yaml"
    params.write_text("ingest:\n  sources:\n    tiny:\n      path: %s\n      adapter: gsm8k\n      license: MIT\n"
                      "      revision: v1\nexport:\n  card:\n    title: Tiny export\n    license: CC-BY-4.0\n" % raw)
    r = run_script("export", "--params", params, "--input", mix_dir, "--output", export_dir,
                   "--metrics", metrics_dir / "export.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = export_dir / "README.md"
    r = run_script("card", "--params", params, "--export", export_dir, "--metrics-dir", metrics_dir, "--mix", mix_dir,
                   "--output", out, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    assert text.startswith("---\n") and "# Tiny export" in text and "License of the export: CC-BY-4.0." in text
    assert "| tiny | tiny | 0 | MIT | v1 | gsm8k |" in text
    assert "| export | 18 | 18 | 0 | - |" in text and "| dedup | not run |" in text
    first = out.read_bytes()
    r = run_script("card", "--params", params, "--export", export_dir, "--metrics-dir", metrics_dir, "--mix", mix_dir,
                   "--output", out, cwd=tmp_path)
    assert r.returncode == 0 and out.read_bytes() == first


def _file_paths(text: str) -> set[str]:
    return set(re.findall(r"(?:eval/)?(?:sft|dpo)/[a-z_]+\.(?:jsonl\.gz|jsonl|parquet)", text))


def test_card_lists_only_what_was_written(mix_dir, tmp_path):
    export_dir = tmp_path / "export"
    run_export([str(mix_dir)], export_dir, ExportParams(), max_line_bytes=1 << 22)
    text = card(export_dir, tmp_path / "metrics", mix_dir)
    assert _file_paths(text) == {"sft/messages.jsonl", "dpo/trl.jsonl", "eval/sft/messages.jsonl",
                                 "eval/dpo/trl.jsonl"}
    assert "Registered: `distillery_eval_sft_messages`, `distillery_phases_calibration_sft_messages`, " \
           "`distillery_phases_reasoning_sft_messages`, `distillery_sft_messages`." in text
    assert "chatml" not in text and "alpaca" not in text and "sharegpt.jsonl" not in text
    # the axolotl DPO example loads TRL's rows: prompt is the messages field
    assert "field_messages: prompt" in text


def test_card_of_every_format_and_file_type(mix_dir, tmp_path):
    export_dir = tmp_path / "export"
    m = run_export([str(mix_dir)], export_dir, every_file_type(), max_line_bytes=1 << 22)
    text = card(export_dir, tmp_path / "metrics", mix_dir)
    assert _file_paths(text) == {f for f in m["files"] if not f.startswith("phases/")}
    assert "| `sft/alpaca.parquet` | train | 6 |" in text and "| `eval/dpo/trl.jsonl.gz` | eval | 1 |" in text
    assert "`dataset: distillery_sft_messages` (stage sft) or `dataset: distillery_dpo_messages_pair` (stage dpo) " \
           "or `dataset: distillery_pt_chatml_text` (stage pt)" in text
    assert "Not registered: `dpo/trl.jsonl`, `dpo/trl.jsonl.gz`, `dpo/trl.parquet` (" in text
    # without provenance.json (an older export) the rows are counted from the files themselves
    (export_dir / "provenance.json").unlink()
    again = card(export_dir, tmp_path / "metrics", mix_dir)
    assert "| `sft/alpaca.parquet` | train | 6 |" in again and "| `eval/dpo/trl.jsonl.gz` | eval | 1 |" in again


def test_card_names_gzip_only_formats_as_not_registered(mix_dir, tmp_path):
    export_dir = tmp_path / "export"
    run_export([str(mix_dir)], export_dir, ExportParams(sft_formats=["chatml_text.jsonl.gz"], dpo_formats=[]),
               max_line_bytes=1 << 22)
    text = card(export_dir, tmp_path / "metrics", mix_dir)
    assert "No file LLaMA-Factory reads was exported" in text
    assert "Not registered: `sft/chatml_text.jsonl.gz` (LLaMA-Factory reads .jsonl and .parquet files, not gzip" in text
    assert 'sft = load_dataset("json", data_files="' in text and "dpo = load_dataset" not in text


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start:end if end > 0 else None]


def test_card_token_stats_are_one_short_table_per_format(tmp_path):
    write_metrics(tmp_path / "metrics")
    sec = _section(card(tmp_path / "export", tmp_path / "metrics"), "## Token statistics")
    assert "| file | tokens of | rows | p50 | p95 | p99 | max |" in sec
    assert "| `sft/messages.jsonl` | full sequence | 900 | 210 | 700 | 980 | 2684 |" in sec
    assert "| `sft/messages.jsonl` | completion | 900 | 72 | 250 | 430 | 2012 |" in sec
    assert "| `dpo/trl.jsonl` | prompt + chosen | 300 | 192 | 653 | 951 | 1879 |" in sec
    # six rows, not the flattened per-bucket keys (40 buckets here; the real details file has 536 leaves)
    assert sec.count("\n| `") == 6 and "bucket0" not in sec and "by_bucket" not in sec


def test_card_token_stats_without_details_say_so(tmp_path):
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics/stats.json").write_text(json.dumps({"recommended_max_length": 512}))
    sec = _section(card(tmp_path / "export", tmp_path / "metrics"), "## Token statistics")
    assert "Recommended `max_length`: **512**." in sec and "No per-format token lengths" in sec


NC_SOURCES = SOURCES | {"code_alpaca": {"dataset": "code_alpaca", "license": "CC-BY-NC-4.0", "revision": "x@1",
                                        "adapter": "alpaca", "path": "data/raw/code_alpaca/x.json"}}


def _provenance(export_dir: Path, sources: dict[str, int]) -> None:
    export_dir.mkdir(parents=True, exist_ok=True)
    prov = {"train": {"records": sum(sources.values()), "by_kind": {"sft": sum(sources.values())},
                      "sources": {ds: {"records": n, "revisions": {}} for ds, n in sources.items()}}}
    (export_dir / "provenance.json").write_text(json.dumps(prov))


def test_card_flags_non_commercial_share_at_the_top(tmp_path):
    export_dir = tmp_path / "export"
    _provenance(export_dir, {"code_alpaca": 394, "gsm8k": 411, "hh_harmless": 694, "distill": 1})
    text = card(export_dir, tmp_path / "metrics", sources=NC_SOURCES)
    flag = ("**Non-commercial data: 394 of 1,500 train records (26%) are under a non-commercial license: "
            "CC-BY-NC-4.0 (code_alpaca: 394).**")
    assert flag in text
    assert text.index(flag) < text.index("## Files"), "the flag is at the top, before any table"
    assert "Licenses of the 1,500 train records: MIT 1,105 (74%), CC-BY-NC-4.0 394 (26%), unknown 1 (0%)." in text


def test_card_license_summary_without_non_commercial_data(tmp_path):
    export_dir = tmp_path / "export"
    _provenance(export_dir, {"gsm8k": 30, "hh_harmless": 10})
    text = card(export_dir, tmp_path / "metrics")
    assert "No train record is under a non-commercial license" in text and "Non-commercial data" not in text
    assert "Licenses of the 40 train records: MIT 40 (100%)." in text


def test_non_commercial_license_names():
    from distillery.export.card_summary import is_non_commercial

    for name in ("CC-BY-NC-4.0", "CC BY-NC-SA 4.0", "cc-by-nc-nd-3.0", "Non-commercial research license",
                 "research-only"):
        assert is_non_commercial(name), name
    for name in ("MIT", "Apache-2.0", "CC-BY-4.0", "CC-BY-SA-4.0", "ODC-BY", "unknown", "", "LLAMA 2 COMMUNITY"):
        assert not is_non_commercial(name), name
