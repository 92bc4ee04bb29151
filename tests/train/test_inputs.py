"""train_eval inputs and bad input: each problem stops with one clear line, before any model loads."""

from __future__ import annotations

import json

import pytest

from distillery.core.errors import InputError
from distillery.core.params import load_params
from distillery.train.data import (gsm8k_items, last_number, load_dpo_rows, mt_bench_examples,
                                   recommended_max_length)
from distillery.train.pipeline import load_inputs


def _params(path, *sets):
    return load_params(path, sets).train_eval


def _one_line_error(proc, *needles):
    err = proc.stderr.strip()
    assert proc.returncode == 2, (proc.stdout, err)
    assert "Traceback" not in err
    last = err.splitlines()[-1]
    assert last.startswith("error: ")
    for n in needles:
        assert n in last, last


def test_missing_base_model_path_is_one_line(run_script, mini_inputs):
    m = mini_inputs
    p = run_script("train_eval", "--params", m["params"], "--mix", m["mix"], "--export", m["export"],
                   "--model", m["root"] / "no-such-model", "--output", m["root"] / "out", cwd=m["root"])
    _one_line_error(p, "train_eval.base_model", "model path not found", "no-such-model")
    assert not (m["root"] / "out").exists()


def test_mix_smaller_than_one_batch_is_one_line(run_script, mini_inputs):
    m = mini_inputs
    prod = m["mix"] / "production.jsonl"
    prod.write_text("".join(prod.read_text().splitlines(keepends=True)[:3]))
    p = run_script("train_eval", "--params", m["params"], "--mix", m["mix"], "--export", m["export"],
                   "--model", "smollm2", "--batch-size", "4", "--output", m["root"] / "out", cwd=m["root"])
    _one_line_error(p, "production.jsonl: 3 SFT records, fewer than one batch", "train_eval.batch_size=4")


def test_empty_preference_export_required_is_one_line(run_script, mini_inputs):
    m = mini_inputs
    (m["export"] / "dpo" / "trl.jsonl").write_text("")
    p = run_script("train_eval", "--params", m["params"], "--mix", m["mix"], "--export", m["export"],
                   "--model", "smollm2", "--dpo", "required", "--output", m["root"] / "out", cwd=m["root"])
    _one_line_error(p, "trl.jsonl: no preference rows", "train_eval.dpo=required")


def test_empty_preference_export_auto_skips_dpo_with_a_note(mini_inputs):
    m = mini_inputs
    (m["export"] / "dpo" / "trl.jsonl").write_text("")
    inp = load_inputs(_params(m["params"]), m["mix"], m["export"])
    assert inp.dpo_rows == []
    assert len(inp.notes) == 1 and inp.notes[0].startswith("DPO skipped:") and "trl.jsonl" in inp.notes[0]
    assert len(inp.sft) == 48  # SFT still trains


def test_dpo_off_never_reads_the_export(mini_inputs):
    inp = load_inputs(_params(mini_inputs["params"], "train_eval.dpo=off"), mini_inputs["mix"], mini_inputs["export"])
    assert inp.dpo_rows == [] and inp.notes == ["DPO off (train_eval.dpo=off)"]


def test_inputs_split_sft_and_pairs_and_skip_bad_rows(mini_inputs):
    m = mini_inputs
    with open(m["export"] / "dpo" / "trl.jsonl", "a") as fh:
        fh.write('{"prompt": "no answers"}\nnot json\n')
    inp = load_inputs(_params(m["params"]), m["mix"], m["export"])
    assert len(inp.sft) == 48 and len(inp.dpo_rows) == 16
    assert len(inp.heldout) == 12 and len(inp.heldout_pairs) == 12
    assert inp.sft[0].prompt[-1]["role"] == "user" and " = " in inp.sft[0].completion
    assert inp.dpo_rows[0]["chosen"][0]["role"] == "assistant"
    assert len(inp.mt_bench) == 2 and inp.mt_bench[1].prompt[-1]["content"] == "Name another one."
    assert inp.mt_bench[1].prompt[1] == {"role": "assistant", "content": "Red."}


def test_missing_heldout_split_is_an_input_error(mini_inputs):
    (mini_inputs["mix"] / "eval.jsonl").unlink()
    with pytest.raises(InputError, match="eval.jsonl: held-out eval split not found"):
        load_inputs(_params(mini_inputs["params"]), mini_inputs["mix"], mini_inputs["export"])


def test_max_length_comes_from_stats_capped_by_params(tmp_path):
    stats = tmp_path / "stats.json"
    assert recommended_max_length(stats, 256) == (256, "params (no stats file)")
    stats.write_text(json.dumps({"recommended_max_length": 192}))
    assert recommended_max_length(stats, 256) == (192, "stats")
    stats.write_text(json.dumps({"recommended_max_length": 4096}))
    assert recommended_max_length(stats, 256) == (256, "params cap")


def test_gsm8k_items_strip_calculator_annotations(mini_inputs):
    items = gsm8k_items(mini_inputs["root"] / "eval" / "gsm8k_test.jsonl.gz", 0)
    assert items[0]["final"] == "7" and "<<" not in items[0]["solution"] and "3 + 4 = 7" in items[0]["solution"]
    assert len(gsm8k_items(mini_inputs["root"] / "eval" / "gsm8k_test.jsonl.gz", 1)) == 1


def test_shipped_eval_sets_parse(repo_root):
    ev = repo_root / "data" / "raw" / "eval"
    if not (ev / "gsm8k_test.jsonl.gz").exists():
        pytest.skip("data/raw/eval not shipped in this checkout")
    assert len(gsm8k_items(ev / "gsm8k_test.jsonl.gz", 0)) == 1319
    mt = mt_bench_examples(ev / "mt_bench_questions.jsonl", ev / "mt_bench_reference_answers.jsonl", 0)
    assert len(mt) == 60  # 30 reference answers x 2 turns


@pytest.mark.parametrize("text,want", [("so 1,234 apples\n#### 1,234", "1234"), ("It is 7.50 dollars.", "7.5"),
                                       ("-3 degrees", "-3"), ("no number", None), ("#### 18.", "18")])
def test_last_number(text, want):
    assert last_number(text) == want


def test_dpo_rows_accept_string_and_conversational_forms(tmp_path):
    f = tmp_path / "trl.jsonl"
    f.write_text(json.dumps({"prompt": "Hi", "chosen": "Hello!", "rejected": "Go away."}) + "\n" +
                 json.dumps({"prompt": [{"role": "user", "content": "Hi"}],
                             "chosen": [{"role": "assistant", "content": "Hello!"}],
                             "rejected": [{"role": "assistant", "content": "No."}]}) + "\n")
    rows = load_dpo_rows(tmp_path)
    assert len(rows) == 2 and rows[0]["prompt"] == [{"role": "user", "content": "Hi"}]
    assert load_dpo_rows(tmp_path / "missing.jsonl") == []


def test_bad_params_value_is_one_line(run_script, mini_inputs):
    p = run_script("train_eval", "--params", mini_inputs["params"], "--set", "train_eval.dpo=sometimes",
                   cwd=mini_inputs["root"])
    _one_line_error(p, "train_eval.dpo")


def test_held_out_is_topped_up_with_ingested_records_never_trained_on_and_sized_by_the_budget(mini_inputs):
    m = mini_inputs
    ingest = m["root"] / "ingest.jsonl"
    prod_ids = [json.loads(x)["id"] for x in (m["mix"] / "production.jsonl").read_text().splitlines()]
    rows = [{"id": prod_ids[0], "kind": "sft", "messages": [{"role": "user", "content": "trained on"},
                                                            {"role": "assistant", "content": "yes"}]}]
    rows += [{"id": f"ing{i}", "kind": "sft", "messages": [{"role": "user", "content": f"q{i}"},
                                                           {"role": "assistant", "content": f"a{i}"}]}
             for i in range(10)]
    rows += [{"id": f"pp{i}", "kind": "preference", "messages": [{"role": "user", "content": f"p{i}"}],
              "chosen": {"role": "assistant", "content": "c"}, "rejected": {"role": "assistant", "content": "r"}}
             for i in range(3)]
    ingest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    p = _params(m["params"], "train_eval.eval.heldout_limit=15", "train_eval.eval.pairs_limit=14",
                f"train_eval.eval.topup_from=[{ingest}]", "train_eval.eval.time_budget_s=200",
                "train_eval.eval.gsm8k_em_limit=50")
    inp = load_inputs(p, m["mix"], m["export"])
    ids = [x.id for x in inp.heldout]
    # 12 from the eval split, then 3 ingested records; the one the production mix holds is never used
    assert len(ids) == 15 and ids[12:] == ["ing0", "ing1", "ing2"] and prod_ids[0] not in ids
    assert len(inp.heldout_pairs) == 14 and [x.id for x in inp.heldout_pairs[12:]] == ["pp0", "pp1"]
    assert inp.topup == {"heldout": 3, "pairs": 2} and any("topped up" in n for n in inp.notes)
    # loss items: 15 + 2 x 14 + 2 MT-Bench + 2 GSM8K + 2 TruthfulQA = 49 -> 98 CPU s of 200; GSM8K EM gets
    # the rest at 2 x 4 s per question, capped by the 2 shipped test questions
    assert inp.plan.loss_items == 49 and inp.plan.gsm8k_em == 2 and len(inp.gsm8k_em) == 2
    tight = load_inputs(_params(m["params"], "train_eval.eval.time_budget_s=50"), m["mix"], m["export"])
    assert tight.plan.over_budget and tight.gsm8k_em == [] and any("time_budget_s" in n for n in tight.notes)


def test_win_rate_prompts_alternate_mt_bench_and_wizardlm(repo_root):
    """A budget that cuts the judged prompts still judges both shipped sets, and item ids name the set."""
    from distillery.train.data import win_rate_prompts

    e = _params(repo_root / "params.yaml").eval
    every = win_rate_prompts(repo_root / e.mt_bench_questions_path, repo_root / e.wizardlm_path, 0)
    assert len(every) == 80 + 218 and len({k for k, _ in every}) == len(every)
    cut = win_rate_prompts(repo_root / e.mt_bench_questions_path, repo_root / e.wizardlm_path, 10)
    assert [k.split(":")[0] for k in (c[0] for c in cut)] == ["mt_bench", "wizardlm"] * 5
    assert cut[1] == ("wizardlm:1", "If a car travels 120 miles in 2 hours, what is its average speed in miles per hour?")
    only_mt = win_rate_prompts(repo_root / e.mt_bench_questions_path, None, 0)
    assert len(only_mt) == 80 and all(k.startswith("mt_bench:") for k, _ in only_mt)
    with pytest.raises(InputError, match="train_eval.eval.wizardlm_path"):
        win_rate_prompts(repo_root / e.mt_bench_questions_path, repo_root / "missing.jsonl", 0)


def test_shipped_eval_sizes_are_the_issue_floors_and_fit_their_budget(repo_root):
    """The shipped params score at least 200 held-out records, 100 held-out pairs, 200 GSM8K solutions and every
    MT-Bench reference (issue 16), and the loss floors leave the time budget room for GSM8K exact match."""
    from distillery.train.budget import plan

    e = _params(repo_root / "params.yaml").eval
    assert e.heldout_limit >= 200 and e.pairs_limit >= 100 and e.gsm8k_ref_limit >= 200 and e.mt_bench_limit == 0
    loss_items = e.heldout_limit + 2 * e.pairs_limit + e.gsm8k_ref_limit + 60 + e.truthfulqa_limit
    p = plan(e, loss_items, 1319, 80, judge_on=False)
    assert not p.over_budget and p.gsm8k_em >= 20, p
