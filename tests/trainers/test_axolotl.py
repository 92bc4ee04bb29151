"""`axolotl preprocess` (pinned, in its side virtualenv) with every dataset snippet the export ships
(registry.AXOLOTL_SFT / AXOLOTL_DPO, what configs/axolotl_datasets.yaml and the card paste), on an exported
bundle: every row prepared, prompts masked, the SFT formats of the same rows give the same token ids."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distillery.export import registry

from .configs import axolotl_config
from .conftest import read_jsonl, run_side, side_python

pytestmark = [pytest.mark.trainers, pytest.mark.timeout(2400)]
SNIPPETS = [*registry.AXOLOTL_SFT, *registry.AXOLOTL_DPO]


@pytest.fixture(scope="module")
def prepared(bundle, smollm2_path, tmp_path_factory):
    """{format: result} of `axolotl preprocess` for each shipped snippet, all in one axolotl process."""
    work = tmp_path_factory.mktemp("axolotl")
    configs = [[fmt, str(axolotl_config(bundle, fmt, smollm2_path, work))] for fmt in SNIPPETS]
    (work / "spec.json").write_text(json.dumps({"configs": configs}), encoding="utf-8")
    py = side_python("axolotl")
    run_side("axolotl", [str(py), str(Path(__file__).with_name("axolotl_preprocess.py")), str(work / "spec.json"),
                         str(work / "out.json")], cwd=work, timeout=1800)
    return {r["label"]: r for r in json.loads((work / "out.json").read_text(encoding="utf-8"))}


def _rows(bundle, fmt):
    return read_jsonl(bundle / f"{'dpo' if fmt in registry.AXOLOTL_DPO else 'sft'}/{fmt}.jsonl")


@pytest.mark.parametrize("fmt", SNIPPETS)
def test_every_shipped_snippet_preprocesses_every_row(prepared, bundle, fmt):
    res = prepared[fmt]
    assert res["ok"], f"axolotl preprocess with the {fmt} snippet: {res.get('error')}"
    assert res["rows"] == len(_rows(bundle, fmt)) > 0
    for ex in res["examples"]:
        if fmt in registry.AXOLOTL_DPO:
            assert ex["prompt"] and ex["chosen"] and ex["rejected"] and ex["chosen"] != ex["rejected"]
        elif fmt != "chatml_text":  # completion trains on every token
            trained = sum(1 for x in ex["labels"] if x != -100)
            assert 0 < trained < len(ex["input_ids"]), fmt


def _sorted(examples):
    """axolotl shuffles the prepared rows (and drops `id`): compare them as a multiset."""
    return sorted((tuple(e["input_ids"]), tuple(e["labels"])) for e in examples)


def test_sharegpt_and_messages_give_the_same_token_ids(prepared):
    assert prepared["messages"]["examples"] and \
        _sorted(prepared["messages"]["examples"]) == _sorted(prepared["sharegpt"]["examples"])


def test_no_empty_system_turn_is_prepended(prepared, smollm2_path):
    """The old `"system": ""` made chat_template open every row with an empty system turn."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smollm2_path)
    for ex in prepared["sharegpt"]["examples"]:
        assert "<|im_start|>system\n<|im_end|>" not in tok.decode(ex["input_ids"])


def test_alpaca_snippet_trains_the_last_turn_of_each_row(prepared, bundle):
    """axolotl's alpaca prompters read no `history` (the card says so): multi-turn rows keep the last turn only."""
    rows = _rows(bundle, "alpaca")
    assert any(r["history"] for r in rows)
    alp = sum(len(e["input_ids"]) for e in prepared["alpaca"]["examples"])
    msgs = sum(len(e["input_ids"]) for e in prepared["messages"]["examples"])
    assert len(prepared["alpaca"]["examples"]) == len(rows) and alp < msgs


def test_chatml_text_completion_ids_are_the_tokenised_text(prepared, bundle, smollm2_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smollm2_path)
    texts = [tok(r["text"], add_special_tokens=False)["input_ids"] for r in _rows(bundle, "chatml_text")]
    got = prepared["chatml_text"]["examples"]
    assert len(got) == len(texts)
    for ex in got:  # each row is one text's tokens (axolotl may append the EOS token)
        assert any(ex["input_ids"][: len(ids)] == ids and len(ex["input_ids"]) - len(ids) <= 1 for ids in texts)
