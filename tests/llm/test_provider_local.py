"""The local provider's own decoding loop, on the real SmolLM2-135M-Instruct: same tokens as HF
`generate` when greedy, the same text for a seeded request in any batch, and stopping per row."""

from __future__ import annotations

import pytest

from distillery.llm.config import TeacherParams
from distillery.llm.decoding import Sampling, decode_batch
from distillery.llm.provider_local import generate, load

pytestmark = pytest.mark.slow

QUESTIONS = ["What is the capital of France?", "Name a primary colour.", "Write a haiku about the sea.",
             "Explain gravity in one sentence.", "List three fruits."]


@pytest.fixture(scope="module")
def teacher(smollm2_path):
    return TeacherParams(name="local", provider="local", model=str(smollm2_path), device="cpu", batch_size=8)


@pytest.fixture(scope="module")
def model_tok(teacher):
    return load(teacher)


def chat(q: str) -> list[dict]:
    return [{"role": "user", "content": q}]


def test_greedy_batch_gives_the_tokens_of_hf_generate(model_tok):
    model, tok = model_tok
    texts = [tok.apply_chat_template(chat(q), add_generation_prompt=True, tokenize=False) for q in QUESTIONS[:4]]
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    hf = model.generate(**enc, max_new_tokens=20, do_sample=False, pad_token_id=tok.pad_token_id)
    ours = decode_batch(model, tok, [tok(t, add_special_tokens=False)["input_ids"] for t in texts], 20, Sampling(),
                        eos_ids={tok.eos_token_id})
    for row, o in enumerate(ours):
        ref = hf[row, enc["input_ids"].shape[1]:].tolist()
        if tok.eos_token_id in ref:
            ref = ref[:ref.index(tok.eos_token_id)]
        assert o.ids == ref, (QUESTIONS[row], o.text)
    assert ours[0].finish_reason == "stop" and "Paris" in ours[0].text    # ended early, on EOS
    assert any(o.finish_reason == "length" and len(o.ids) == 20 for o in ours)


def test_seeded_sampling_is_the_same_in_any_batch(teacher):
    gen = {"temperature": 0.9, "top_p": 0.95, "max_tokens": 16, "seed": 7}
    alone = [generate(teacher, "chat", [chat(q)], gen)[0].text for q in QUESTIONS]
    together = [o.text for o in generate(teacher, "chat", [chat(q) for q in QUESTIONS], gen)]
    shuffled = generate(teacher, "chat", [chat(q) for q in QUESTIONS[::-1]], gen)
    assert together == alone == [o.text for o in shuffled][::-1]
    other_seed = generate(teacher, "chat", [chat(q) for q in QUESTIONS], {**gen, "seed": 8})
    assert [o.text for o in other_seed] != together     # the seed, not luck, fixes the text


def test_requests_that_differ_only_in_seed_share_a_batch(teacher):
    """Distill's answers per prompt (one seed each) decode as one batch and give each request the text
    it gets alone with its own seed."""
    gen = {"temperature": 0.9, "max_tokens": 12}
    qs = [chat(QUESTIONS[2]), chat(QUESTIONS[2]), chat(QUESTIONS[3])]
    together = [o.text for o in generate(teacher, "chat", qs, gen, seeds=[1, 2, 1])]
    alone = [generate(teacher, "chat", [q], {**gen, "seed": seed})[0].text for q, seed in zip(qs, [1, 2, 1])]
    assert together == alone and together[0] != together[1]


def test_a_row_that_finishes_early_leaves_the_others_unchanged(teacher):
    """The short answer ends on EOS and leaves the batch (its cache rows dropped); the long ones give the
    text they give alone."""
    gen = {"temperature": 0.0, "max_tokens": 24}
    qs = ["Reply with one word: yes or no?", "Write a long story about a dragon.", "Describe the water cycle."]
    batch = generate(teacher, "chat", [chat(q) for q in qs], gen)
    assert batch[0].finish_reason == "stop" and batch[0].completion_tokens < 10
    assert [o.finish_reason for o in batch[1:]] == ["length", "length"]
    for q, o in zip(qs, batch):
        (alone,) = generate(teacher, "chat", [chat(q)], gen)
        assert (alone.text, alone.completion_tokens, alone.finish_reason) == \
               (o.text, o.completion_tokens, o.finish_reason)


def test_rows_that_move_into_finished_rows_slots_keep_their_text(model_tok):
    """Short and long answers alternate, so finished rows free slots in the middle of the batch and the
    rows still going move into them (their KV-cache rows copied): each row's sampled text, length and
    finish reason are what it gets alone, whichever slot it ends in."""
    model, tok = model_tok
    short, long = "Reply with one word: yes or no?", "Write a long story about a dragon and a knight."
    qs = [short, long, "Name a primary colour.", "Describe the water cycle in detail.", short, long]
    prompts = [tok.apply_chat_template(chat(q), add_generation_prompt=True, tokenize=True) for q in qs]
    prompts = [list(p["input_ids"] if hasattr(p, "keys") else p) for p in prompts]
    sampling, seeds = Sampling(temperature=0.8), [11, 12, 13, 14, 15, 16]
    together = decode_batch(model, tok, prompts, 40, sampling, eos_ids={tok.eos_token_id}, seeds=seeds)
    alone = [decode_batch(model, tok, [p], 40, sampling, eos_ids={tok.eos_token_id}, seeds=[s])[0]
             for p, s in zip(prompts, seeds)]
    assert [(o.ids, o.finish_reason) for o in together] == [(o.ids, o.finish_reason) for o in alone]
    lengths = [len(o.ids) for o in together]
    assert lengths[0] < 40 and lengths[4] < 40 and lengths[5] == 40   # the last row moved up, twice


def test_stop_strings_and_max_tokens_set_the_finish_reason(teacher):
    count = "1, 2, 3, 4, 5, 6,"
    stop, short = generate(teacher, "completion", [count, "The quick brown fox"],
                                 {"temperature": 0.0, "max_tokens": 12, "stop": [" 9"]})
    assert stop.text.strip().startswith("7") and " 9" not in stop.text and "8" in stop.text
    assert stop.finish_reason == "stop" and stop.completion_tokens < 12
    assert short.finish_reason == "length" and short.completion_tokens == 12
    (capped,) = generate(teacher, "completion", [count], {"temperature": 0.0, "max_tokens": 3})
    assert capped.finish_reason == "length" and capped.completion_tokens == 3
    assert stop.text.startswith(capped.text)


def test_guided_requests_still_parse_in_a_batch(teacher):
    import json

    schema = {"type": "object", "properties": {"score": {"type": "integer", "minimum": 1, "maximum": 5},
                                               "ok": {"type": "boolean"}}}
    outs = generate(teacher, "chat", [chat(f"Rate '{q}' from 1 to 5 as JSON.") for q in QUESTIONS[:3]],
                    {"temperature": 0.0, "max_tokens": 4}, schema)
    for o in outs:
        js = json.loads(o.text)
        assert 1 <= js["score"] <= 5 and isinstance(js["ok"], bool) and o.finish_reason == "stop"
        assert o.prompt_tokens > 10 and o.completion_tokens > 0


def test_a_guided_verdict_does_not_depend_on_its_batch(model_tok):
    """Rows of different prompt lengths, decoded together (masked holes where a row has nothing to
    feed), give each prompt the verdict it gets alone: choices, expected scores and token counts."""
    from distillery.llm.guided import decode, decode_batch as decode_guided, guided_fields, plan

    model, tok = model_tok
    expected = {"type": "number", "minimum": 1, "maximum": 10, "x-guided": "expected"}
    steps = plan(tok, guided_fields({"type": "object", "properties": {
        "verdict": {"enum": ["A", "B", "tie"]}, "clarity": expected, "score": {"type": "integer", "minimum": 1,
                                                                                "maximum": 10},
        "ok": {"type": "boolean"}, "overall": expected}}))
    prompts = [tok(tok.apply_chat_template(chat(f"Rate the answer {q!r} as JSON." + " Be fair." * i),
                                           add_generation_prompt=True, tokenize=False),
                   add_special_tokens=False)["input_ids"] for i, q in enumerate(QUESTIONS)]
    assert len({len(p) for p in prompts}) == len(prompts)
    assert decode_guided(model, tok, prompts, steps) == [decode(model, tok, p, steps) for p in prompts]


def test_the_kv_cache_outgrowing_its_capacity_gives_the_same_logits(model_tok):
    """The preallocated cache grows when a caller underestimates its length, and still matches
    transformers' DynamicCache step by step."""
    import torch
    from transformers import DynamicCache

    from distillery.llm.decoding import kv_cache

    model, tok = model_tok
    ids = tok(QUESTIONS[2], return_tensors="pt")["input_ids"]
    caches = {"ours": kv_cache(model, capacity=2), "hf": DynamicCache()}
    logits = {}
    with torch.inference_mode():
        for name, cache in caches.items():
            out = [model(input_ids=ids, past_key_values=cache, use_cache=True).logits[0, -1]]
            for t in (11, 12, 13):
                out.append(model(input_ids=torch.tensor([[t]]), past_key_values=cache, use_cache=True).logits[0, -1])
            logits[name] = torch.stack(out)
    assert caches["ours"].get_seq_length() == ids.shape[1] + 3
    assert torch.allclose(logits["ours"], logits["hf"], atol=1e-4)


RUBRIC = ("You grade answers. Rate the ANSWER to the REQUEST on each criterion from 1 (very poor) to 10 "
          "(excellent): accuracy, clarity, completeness and helpfulness, then give an overall score. ") * 3


def judged(q: str, answer: str) -> list[dict]:
    return [{"role": "system", "content": RUBRIC}, {"role": "user", "content": f"REQUEST: {q}\nANSWER: {answer}"}]


def test_shared_prompt_prefixes_are_computed_once_and_change_no_answer(model_tok):
    """A judge's rubric and a question asked for several answers are prompt prefixes many rows share:
    their whole 64-token chunks run once per distinct prefix (the forward passes see far fewer prompt
    tokens than the batch holds), yet every row still gets HF `generate`'s greedy tokens and, sampled,
    the text it gets alone."""
    import torch

    from distillery.llm.decoding import PREFIX_CHUNK

    model, tok = model_tok
    answers = ["Paris.", "It pulls things down, like an apple falling from a tree to the ground.", "No idea."]
    texts = [tok.apply_chat_template(judged(q, a), add_generation_prompt=True, tokenize=False)
             for q in QUESTIONS[:3] for a in answers] + ["A short prompt"]
    prompts = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    assert min(len(p) for p in prompts[:-1]) > 2 * PREFIX_CHUNK     # each row has whole chunks to share

    def prefilled(batch: list[list[int]]) -> int:
        """Prompt tokens the forward passes saw (padding included) for `batch`."""
        seen = []
        hook = model.register_forward_pre_hook(lambda _m, _a, kw: seen.append(kw["input_ids"].numel()),
                                               with_kwargs=True)
        try:
            decode_batch(model, tok, batch, 1, Sampling())
        finally:
            hook.remove()
        return sum(seen)

    assert prefilled(prompts) < 0.5 * sum(len(p) for p in prompts)     # 9 rows share the rubric's chunks
    assert prefilled([prompts[0]] * 4) == prefilled([prompts[0]])       # one question, four sampled answers

    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    hf = model.generate(**enc, max_new_tokens=16, do_sample=False, pad_token_id=tok.pad_token_id)
    ours = decode_batch(model, tok, prompts, 16, Sampling(), eos_ids={tok.eos_token_id})
    for row, o in enumerate(ours):
        ref = hf[row, enc["input_ids"].shape[1]:].tolist()
        assert o.ids == (ref[:ref.index(tok.eos_token_id)] if tok.eos_token_id in ref else ref), texts[row]

    sampling = Sampling(temperature=0.9, seed=5)
    with torch.inference_mode():
        alone = [decode_batch(model, tok, [p], 16, sampling)[0].text for p in prompts]
    assert [o.text for o in decode_batch(model, tok, prompts[::-1], 16, sampling)][::-1] == alone


def test_a_guided_verdict_on_a_shared_rubric_does_not_depend_on_its_batch(model_tok):
    """Judge prompts that share the rubric (computed once) give each answer the verdict it gets alone."""
    from distillery.llm.guided import decode, decode_batch as decode_guided, guided_fields, plan

    model, tok = model_tok
    expected = {"type": "number", "minimum": 1, "maximum": 10, "x-guided": "expected"}
    steps = plan(tok, guided_fields({"type": "object", "properties": {"accuracy": expected, "overall": expected}}))
    prompts = [tok(tok.apply_chat_template(judged(QUESTIONS[0], a), add_generation_prompt=True, tokenize=False),
                   add_special_tokens=False)["input_ids"] for a in ("Paris.", "Lyon, on the Rhone.", "Berlin")]
    assert decode_guided(model, tok, prompts, steps) == [decode(model, tok, p, steps) for p in prompts]
