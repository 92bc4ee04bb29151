"""TRL (the main virtualenv's) trains 2 SFT and 2 DPO steps on an exported bundle, as its card tells a user
to load it; its tokenisation of `sft/messages` and `sft/chatml_text` agrees on the same rows."""

from __future__ import annotations

import math

import pytest

from .conftest import PERSONA, read_jsonl

pytestmark = [pytest.mark.trainers, pytest.mark.timeout(2400)]
TRAIN_LEN = 128  # training rows are cut there: two steps only need real batches (DPO drops pairs whose prompt fills it)


def _load(path):
    from datasets import load_dataset

    return load_dataset("json", data_files=str(path), split="train")


def _args(cls, out, max_length=TRAIN_LEN, **kw):
    """CPU float32: TRL's configs default to bf16, which CPUs without native bf16 emulate several times slower."""
    return cls(output_dir=str(out), max_steps=2, per_device_train_batch_size=1, learning_rate=1e-5, logging_steps=1,
               save_strategy="no", report_to=[], use_cpu=True, bf16=False, seed=0, max_length=max_length, **kw)


@pytest.fixture(scope="module")
def tokenizer(smollm2_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_path)


def _model(path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path)


def _losses(trainer):
    return [h["loss"] for h in trainer.state.log_history if "loss" in h]


def test_trl_sft_trains_two_steps_on_messages(bundle, smollm2_path, tokenizer, tmp_path):
    from trl import SFTConfig, SFTTrainer

    trainer = SFTTrainer(model=_model(smollm2_path), args=_args(SFTConfig, tmp_path), processing_class=tokenizer,
                         train_dataset=_load(bundle / "sft/messages.jsonl"))
    trainer.train()
    losses = _losses(trainer)
    assert trainer.state.global_step == 2 and len(losses) == 2 and all(math.isfinite(x) and x > 0 for x in losses)


def test_trl_dpo_trains_two_steps_on_trl_pairs(bundle, smollm2_path, tokenizer, tmp_path):
    from trl import DPOConfig, DPOTrainer

    trainer = DPOTrainer(model=_model(smollm2_path), args=_args(DPOConfig, tmp_path), processing_class=tokenizer,
                         train_dataset=_load(bundle / "dpo/trl.jsonl"))
    assert len(trainer.train_dataset) >= 2  # two real pairs, not one seen twice
    trainer.train()
    losses = _losses(trainer)
    assert trainer.state.global_step == 2 and len(losses) == 2 and all(math.isfinite(x) for x in losses)
    # the first step's loss is log 2: the policy starts equal to the reference
    assert losses[0] == pytest.approx(math.log(2), abs=1e-3)


def test_trl_token_ids_agree_between_messages_and_chatml_text(bundle, smollm2_path, tokenizer, tmp_path):
    """Rows with their own system prompt: the chat template of `messages` renders exactly `chatml_text`
    (SmolLM2's template adds its default system prompt to rows without one; chatml_text holds only the row)."""
    from trl import SFTConfig, SFTTrainer

    model = _model(smollm2_path)

    def processed(rel, **kw):  # whole rows (no max_length): nothing trains here
        t = SFTTrainer(model=model, args=_args(SFTConfig, tmp_path / rel, max_length=None, **kw),
                       processing_class=tokenizer, train_dataset=_load(bundle / rel))
        return {r["id"]: r["input_ids"] for r in t.train_dataset}

    msgs = processed("sft/messages.jsonl")
    text = processed("sft/chatml_text.jsonl", dataset_text_field="text")
    rows = read_jsonl(bundle / "sft/messages.jsonl")
    with_system = [r["id"] for r in rows if r["messages"][0]["role"] == "system"]
    assert with_system and all(r["messages"][0]["content"] == PERSONA for r in rows if r["id"] in with_system)
    assert len(msgs) == len(text) == len(rows)
    assert len(with_system) < len(rows)
    eos = tokenizer.eos_token_id  # TRL appends EOS to language-modelling text, not to rendered conversations
    for rid in with_system:
        assert text[rid] == msgs[rid] + [eos], rid
    for r in rows:
        if r["id"] not in with_system:  # the template's default system prompt comes first
            t = text[r["id"]][:-1]
            assert len(msgs[r["id"]]) > len(t) and msgs[r["id"]][-len(t):] == t
