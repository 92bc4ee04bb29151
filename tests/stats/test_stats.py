"""Token statistics with the real SmolLM2 tokenizer: hand-counted lengths, no double BOS, per bucket."""

import json
import shutil

import pytest

from distillery.stats.config import StatsParams
from distillery.stats.lengths import TemplateLengths
from distillery.stats.rows import to_row
from distillery.stats.run import run_stats
from distillery.stats.summary import describe, histogram, recommend_max_length

CONV = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello there"}]


@pytest.fixture(scope="module")
def meter(smollm2_path):
    return TemplateLengths(str(smollm2_path))


def test_hand_count_smollm2(meter):
    # <|im_start|> system \n Be ␣brief . <|im_end|> \n                 = 8
    # <|im_start|> user \n Hi <|im_end|> \n                            = 6
    # generation prompt: <|im_start|> ass istant \n                    = 4  -> prompt 18
    # answer: Hello ␣there <|im_end|> \n                               = 4  -> full 22
    assert meter.lengths([CONV[:-1]], generation_prompt=True) == [18]
    assert meter.lengths([CONV]) == [22]
    ref = meter.tok.apply_chat_template(CONV, tokenize=True)["input_ids"]
    assert len(ref) == 22 and ref.count(meter.tok.convert_tokens_to_ids("<|im_start|>")) == 3


def test_bos_counted_once_with_a_bos_template(smollm2_path, tmp_path):
    """A Llama-style tokenizer: the template writes BOS and the tokenizer would add another."""
    from tokenizers.processors import TemplateProcessing
    from transformers import AutoTokenizer

    d = tmp_path / "bos_tok"
    shutil.copytree(smollm2_path, d, ignore=shutil.ignore_patterns("*.safetensors"))
    tok = AutoTokenizer.from_pretrained(d)
    tok.bos_token = "<|endoftext|>"
    bos = tok.bos_token_id
    tok.backend_tokenizer.post_processor = TemplateProcessing(single="<|endoftext|> $A", special_tokens=[
        ("<|endoftext|>", bos)])
    tok.chat_template = "{{ bos_token }}" + tok.chat_template
    tok.save_pretrained(d)

    m = TemplateLengths(str(d))
    text = m.render([CONV], False)[0]
    assert text.startswith("<|endoftext|><|im_start|>system")
    naive = len(m.tok(text)["input_ids"])                       # the double-BOS trap
    ref = m.tok.apply_chat_template(CONV, tokenize=True)["input_ids"]
    assert ref.count(bos) == 1
    assert m.lengths([CONV]) == [len(ref)] == [23] and naive == 24
    # the stage's counter too: BOS once, whichever way it counts
    assert m.measure([to_row({"messages": CONV})]) == [(m.lengths([CONV[:-1]], True)[0], 23)]


def test_percentiles_truncation_and_recommendation():
    vals = list(range(1, 101))                       # 1..100
    d = describe(vals, [50, 90])
    assert (d["p50"], d["p95"], d["p99"], d["max"], d["count"]) == (50, 95, 99, 100, 100)
    assert d["truncated_share"] == {"50": 0.5, "90": 0.1}
    assert recommend_max_length([100] * 98 + [1000, 1300], 99, 64) == 1024     # p99 = 1000 -> 1024
    assert recommend_max_length([10], 99, 128) == 128
    assert histogram([0, 63, 64, 200], 64) == [{"tokens": 0, "count": 2}, {"tokens": 64, "count": 1},
                                               {"tokens": 128, "count": 0}, {"tokens": 192, "count": 1}]


def _write(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))


def test_run_stats_per_bucket_from_mix(tmp_path, smollm2_path):
    HEY = [{"role": "user", "content": "Hey"}, {"role": "assistant", "content": "Hello there"}]  # 'Hey': 1 token
    exp, mix = tmp_path / "export", tmp_path / "mix"
    _write(exp / "sft" / "messages.jsonl", [
        {"id": "a", "messages": CONV},
        {"id": "b", "messages": HEY},
        {"messages": HEY},
        "{not json"])
    _write(exp / "dpo" / "trl.jsonl", [
        {"id": "c", "prompt": CONV[:2], "chosen": [CONV[2]], "rejected": [{"role": "assistant", "content": "No"}]}])
    _write(mix / "production.jsonl", [
        {"id": "a", "bucket": "code", "messages": CONV},
        {"id": "b", "bucket": "factual", "messages": HEY},
        {"id": "c", "bucket": "red_team", "messages": CONV[:2]}])
    p = StatsParams(tokenizer=str(smollm2_path), candidate_max_lengths=[20, 4096], round_to=8, cache_path=None)
    m = run_stats([exp], tmp_path / "stats", p, mix, 1 << 22, tmp_path / "plots")
    # "b" has no system turn, so SmolLM2's template adds its default system prompt (13 tokens more)
    ov = m["overall"]
    assert ov["sft"]["full"]["max"] == 35 and ov["sft"]["full"]["min"] == 22
    assert ov["sft"]["prompt"]["p50"] == 31 and ov["sft"]["completion"]["max"] == 4
    assert ov["dpo"]["prompt"]["max"] == 18 and ov["dpo"]["chosen"]["max"] == 22
    assert ov["dpo"]["rejected"]["max"] == 21 and ov["dpo"]["rejected_completion"]["max"] == 3
    assert m["by_bucket"]["code"]["sft"]["full"]["max"] == 22
    assert m["by_bucket"]["factual"]["sft"]["full"]["max"] == 35
    assert m["by_bucket"]["red_team"]["dpo"]["chosen"]["max"] == 22
    assert m["by_bucket"]["factual"]["sft"]["full"]["count"] == 2     # the id-less row matched by its text
    assert ov["sft"]["full"]["truncated_share"] == {"20": 1.0, "4096": 0.0}
    assert m["recommended_max_length"] == 40 and m["token_p99"] == 35
    assert m["rejects_by_reason"] == {"malformed_json": 1} and m["records_out"] == 4
    hist = json.loads((tmp_path / "plots" / "stats_tokens_dpo_chosen.json").read_text())
    assert hist == [{"tokens": 0, "count": 1}]       # one 22-token row in the 0-63 bin


def test_script_help_and_bad_tokenizer(run_script, tmp_path):
    r = run_script("stats", "--help")
    assert r.returncode == 0 and "--chat-template" in r.stdout and "--mix" in r.stdout
    f = tmp_path / "x.jsonl"
    _write(f, [{"messages": CONV}])
    r = run_script("stats", "--input", f, "--output", tmp_path / "o", "--tokenizer", str(tmp_path / "nope"),
                   cwd=tmp_path, env={"DISTILLERY_TRACKING": "0"})
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("error: model path not found")
