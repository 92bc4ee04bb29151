"""LLaMA-Factory's own `get_dataset` (pinned, in its side virtualenv) on every registration of an exported
bundle's dataset_info.json, with the stage its name registers it for: every row kept, and the SFT formats of
the same rows give the same token ids."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import read_jsonl, run_side, side_python

pytestmark = [pytest.mark.trainers, pytest.mark.timeout(2400)]  # one LLaMA-Factory process, ~25 loads
PT_BLOCK = 128


def registered_stage(name: str) -> str:
    """The LLaMA-Factory stage a registration's name says: <prefix>[_bundle]_(sft|dpo|pt)_<format>."""
    from distillery.export.registry import LLAMAFACTORY

    fmt = max((f for f in LLAMAFACTORY if name.endswith("_" + f)), key=len)
    return name[: -len(fmt) - 1].rsplit("_", 1)[1]


WRONG = {"sft": "dpo", "dpo": "sft", "pt": "sft"}


@pytest.fixture(scope="module")
def loaded(bundle, registrations, smollm2_path, tmp_path_factory):
    """{(name, stage): result} for every registration at its own stage and at a wrong one, in one process."""
    train = [n for n in registrations if registrations[n]["file_name"].split("/")[0] in ("sft", "dpo")]
    runs = [[n, registered_stage(n)] for n in registrations] + [[n, WRONG[registered_stage(n)]] for n in train]
    work = tmp_path_factory.mktemp("llamafactory")
    spec = {"dataset_dir": str(bundle), "model": str(smollm2_path), "template": "smollm2", "pt_block": PT_BLOCK,
            "runs": runs}
    (work / "spec.json").write_text(json.dumps(spec), encoding="utf-8")
    py = side_python("llamafactory")
    run_side("llamafactory", [str(py), str(Path(__file__).with_name("lf_get_dataset.py")),
                              str(work / "spec.json"), str(work / "out.json")], cwd=work, timeout=1200)
    out = json.loads((work / "out.json").read_text(encoding="utf-8"))
    (work / "out.json").unlink()
    return {(r["name"], r["stage"]): r for r in out}


def test_registrations_cover_every_llamafactory_format(registrations):
    stages = {n: registered_stage(n) for n in registrations}
    assert len(registrations) == 18  # 3 bundles with rows (train, eval, one phase) x their non-empty formats
    assert {n for n, s in stages.items() if s == "pt"} == {
        "distillery_pt_chatml_text", "distillery_eval_pt_chatml_text", "distillery_phases_reasoning_pt_chatml_text"}
    for n, e in registrations.items():
        assert bool(e.get("ranking")) == (stages[n] == "dpo"), n


def test_every_registration_loads_every_row_at_its_stage(loaded, registrations, bundle):
    for name, entry in registrations.items():
        stage = registered_stage(name)
        res = loaded[(name, stage)]
        assert res["ok"], f"{name} (stage {stage}): {res.get('error')}"
        rows = read_jsonl(bundle / entry["file_name"])
        if stage == "pt":  # packed into blocks of PT_BLOCK tokens
            assert res["rows"] >= 1 and all(len(e["input_ids"]) == PT_BLOCK for e in res["examples"]), name
            continue
        assert res["rows"] == len(rows) > 0, f"{name}: LLaMA-Factory kept {res['rows']} of {len(rows)} rows"
        for ex in res["examples"]:
            if stage == "sft":  # the answers are trained on, the prompts are not
                trained = sum(1 for x in ex["labels"] if x != -100)
                assert 0 < trained < len(ex["input_ids"]), name
            else:
                assert ex["chosen_input_ids"] != ex["rejected_input_ids"], name


def test_a_registration_at_the_wrong_stage_is_refused_or_empty(loaded, registrations):
    """What the old `distillery_sft_*chatml_text` names hid: pt text at stage sft loads nothing."""
    probed = [n for n in registrations if (n, WRONG[registered_stage(n)]) in loaded]
    assert len(probed) == 7  # the train bundle's registrations
    for name in probed:
        res = loaded[(name, WRONG[registered_stage(name)])]
        assert not res["ok"] or res["rows"] == 0, f"{name} also loads at stage {res['stage']}"


def test_pt_blocks_are_the_chatml_texts_with_eos(loaded, bundle, smollm2_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smollm2_path)
    texts = [r["text"] for r in read_jsonl(bundle / "sft/chatml_text.jsonl")]
    ids = [i for ex in loaded[("distillery_pt_chatml_text", "pt")]["examples"] for i in ex["input_ids"]]
    expected = [i for t in texts for i in tok(t + tok.eos_token, add_special_tokens=False)["input_ids"]]
    assert len(ids) == len(expected) // PT_BLOCK * PT_BLOCK and ids == expected[:len(ids)]


@pytest.mark.parametrize("bundle_prefix", ["distillery", "distillery_eval", "distillery_phases_reasoning"])
def test_sft_formats_of_the_same_rows_give_the_same_token_ids(loaded, bundle_prefix):
    got = {f: loaded[(f"{bundle_prefix}_sft_{f}", "sft")]["examples"] for f in ("messages", "sharegpt", "alpaca")}
    assert got["messages"] and got["sharegpt"] == got["messages"]
    # alpaca keeps multi-turn rows through `history`: the same ids as the full conversation
    assert got["alpaca"] == got["messages"]


def test_dpo_formats_of_the_same_pairs_give_the_same_token_ids(loaded):
    pair = loaded[("distillery_dpo_messages_pair", "dpo")]["examples"]
    pref = loaded[("distillery_dpo_alpaca_pref", "dpo")]["examples"]
    assert pair and pair == pref
    # prompt_pairs holds the single-turn pairs only: each is one of the full pairs
    for ex in loaded[("distillery_dpo_prompt_pairs", "dpo")]["examples"]:
        assert ex in pair
