"""Params are checked where they matter (the sections a stage reads) and across keys: a teacher or
bucket that points nowhere, or a min above its max, stops loading with one line naming the key."""

import subprocess
import sys
import textwrap

import pytest

from distillery.core.errors import ParamsError
from distillery.core.params import SectionNotLoaded, get_section, load_params, section_dict


def write(tmp_path, text):
    p = tmp_path / "params.yaml"
    p.write_text(textwrap.dedent(text))
    return p


def one_line_error(path, **kw) -> str:
    with pytest.raises(ParamsError) as e:
        load_params(path, **kw)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


TEACHER_USES = [
    ("train_eval:\n  judge: {teacher: gpt-x}\n", "train_eval.judge.teacher"),
    ("distill:\n  teachers: {local-smollm2: 1.0, gpt-x: 1.0}\n", "distill.teachers.gpt-x"),
    ("distill:\n  bucket_teachers: {code: {gpt-x: 1.0}}\n", "distill.bucket_teachers.code.gpt-x"),
    ("distill:\n  failover: [local-smollm2, gpt-x]\n", "distill.failover[1]"),
    ("distill:\n  pilot: {teachers: [gpt-x]}\n", "distill.pilot.teachers[0]"),
    ("synthesize:\n  multiturn: {user_teacher: gpt-x}\n", "synthesize.multiturn.user_teacher"),
    ("synthesize:\n  scenarios: {idea_teacher: gpt-x}\n", "synthesize.scenarios.idea_teacher"),
    ("synthesize:\n  scenarios: {trait_check: {teacher: gpt-x}}\n", "synthesize.scenarios.trait_check.teacher"),
    ("synthesize:\n  completion: {teacher: gpt-x}\n", "synthesize.completion.teacher"),
    ("score:\n  judge: {teachers: [gpt-x]}\n", "score.judge.teachers[0]"),
    ("preferences:\n  teacher_rank: [local-smollm2, gpt-x]\n", "preferences.teacher_rank[1]"),
]


@pytest.mark.parametrize("text,key", TEACHER_USES, ids=[k for _, k in TEACHER_USES])
def test_an_undefined_teacher_is_named_by_its_key(tmp_path, text, key):
    p = write(tmp_path, text)
    assert one_line_error(p) == (f"{p}: {key}: 'gpt-x' is not defined in llm.teachers (defined: local-smollm2)")


def test_a_teacher_is_checked_when_its_section_is_loaded_and_llm_is_loaded_for_it(tmp_path):
    p = write(tmp_path, "train_eval:\n  judge: {teacher: gpt-x}\n")
    load_params(p, sections=("dedup",))                    # train_eval not read: not checked
    assert "train_eval.judge.teacher: 'gpt-x'" in one_line_error(p, sections=("train_eval",))
    ok = load_params(p, ["train_eval.judge.teacher=local-smollm2"], sections=("train_eval",))
    assert list(get_section(ok, "llm").teachers) == ["local-smollm2"]   # loaded for the check


def test_unset_defaults_need_not_name_a_defined_teacher(tmp_path):
    """A file that replaces llm.teachers need not restate every default (distill's local-smollm2)."""
    p = write(tmp_path, """\
        llm:
          default_teacher: t
          teachers: {t: {provider: openai, model: m, base_url: "http://127.0.0.1:9/v1"}}
        """)
    assert load_params(p).distill.teachers == {"local-smollm2": 1.0}


BUCKET_USES = [
    ("ingest:\n  sources:\n    x: {path: data.jsonl, bucket: poetry}\n", "ingest.sources.x.bucket"),
    ("mix:\n  production: {size: 10, weights: {code: 1.0, poetry: 1.0}}\n", "mix.production.weights.poetry"),
    ("mix:\n  phases: {p: {size: 10, weights: {poetry: 1.0}}}\n", "mix.phases.p.weights.poetry"),
    ("mix:\n  buckets: {poetry: {cap: 10}}\n", "mix.buckets.poetry"),
    ("distill:\n  buckets: [code, poetry]\n", "distill.buckets[1]"),
    ("distill:\n  bucket_teachers: {poetry: {local-smollm2: 1.0}}\n", "distill.bucket_teachers.poetry"),
    ("synthesize:\n  multiturn: {bucket: poetry}\n", "synthesize.multiturn.bucket"),
    ("score:\n  heuristics: {refusal_exempt_buckets: [poetry]}\n", "score.heuristics.refusal_exempt_buckets[0]"),
    ("score:\n  heuristics: {required: [{pattern: x, buckets: [poetry]}]}\n",
     "score.heuristics.required[0].buckets[0]"),
    ("buckets:\n  rules: [{bucket: poetry, patterns: [sonnet]}]\n", "buckets.rules[0].bucket"),
    ("buckets:\n  default: poetry\n", "buckets.default"),
]


@pytest.mark.parametrize("text,key", BUCKET_USES, ids=[k for _, k in BUCKET_USES])
def test_an_unknown_bucket_is_named_by_its_key(tmp_path, text, key):
    (tmp_path / "data.jsonl").write_text("{}\n")
    p = write(tmp_path, text)
    msg = one_line_error(p)
    assert msg.startswith(f"{p}: {key}: unknown bucket 'poetry' (known: analytical, code, ")
    assert msg.endswith("; add new ones to buckets.extra)")
    assert load_params(p, ["buckets.extra=[poetry]"])      # an added bucket is known everywhere


RANGES = [
    ("score:\n  heuristics: {min_response_words: 5000}\n",
     "score.heuristics.min_response_words: 5000 is above max_response_words (4000)"),
    ("synthesize:\n  multiturn: {min_turns: 4, max_turns: 3}\n",
     "synthesize.multiturn.min_turns: 4 is above max_turns (3)"),
    ("synthesize:\n  multiturn: {min_words: 500}\n", "synthesize.multiturn.min_words: 500 is above max_words (400)"),
    ("validate:\n  score_min: 11\n", "validate.score_min: 11.0 is above score_max (10.0)"),
    ("validate:\n  min_chars: 10\n  max_chars: 5\n", "validate.min_chars: 10 is above max_chars (5)"),
    ("dedup:\n  decontaminate: {min_ngram: 20}\n", "dedup.decontaminate.min_ngram: 20 is above ngram (13)"),
    ("ingest:\n  defaults: {min_turn_chars: 10, max_record_chars: 5}\n",
     "ingest.defaults.min_turn_chars: 10 is above max_record_chars (5)"),
    ("llm:\n  teachers: {local-smollm2: {provider: local, model: smollm2, backoff_base_s: 9, backoff_max_s: 1}}\n",
     "llm.teachers.local-smollm2.backoff_base_s: 9.0 is above backoff_max_s (1.0)"),
]


@pytest.mark.parametrize("text,line", RANGES, ids=[line.split(":")[0] for _, line in RANGES])
def test_a_range_in_the_wrong_order_is_named(tmp_path, text, line):
    p = write(tmp_path, text)
    assert one_line_error(p) == f"{p}: {line}"


def test_a_stage_checks_only_the_sections_it_reads(tmp_path):
    (tmp_path / "a.jsonl").write_text("{}\n")
    p = write(tmp_path, """\
        dedup: {threshold: 0.7}
        ingest:
          sources:
            a: {path: a.jsonl}
            other: {path: data/missing.jsonl}
        """)
    params = load_params(p, sections=("dedup",))
    assert params.dedup.threshold == 0.7 and params.project.seed == 42 and params.tracking.enabled
    with pytest.raises(ParamsError, match=r"ingest\.sources\.other\.path: path not found: data/missing.jsonl"):
        load_params(p, sections=("ingest",))
    with pytest.raises(ParamsError, match=r"ingest\.sources\.other\.path"):
        load_params(p)                                     # sections=None: the whole file, as before


def test_reading_a_section_that_was_not_loaded_raises(tmp_path):
    params = load_params(write(tmp_path, "dedup: {}\n"), sections=["dedup"])
    for read in (lambda: get_section(params, "ingest"), lambda: params.mix,
                 lambda: section_dict(params, "validate")):
        with pytest.raises(SectionNotLoaded, match=r"params section '(ingest|mix|validate)' was not loaded"):
            read()
    assert issubclass(SectionNotLoaded, RuntimeError) and not issubclass(SectionNotLoaded, AttributeError)
    assert section_dict(params, "dedup")["threshold"] == 0.8


def test_an_unknown_section_is_still_an_error(tmp_path):
    p = write(tmp_path, "dedup: {}\ndedupe: {threshold: 0.5}\n")
    assert one_line_error(p, sections=("dedup",)) == f"{p}: dedupe: unknown key"
    with pytest.raises(ValueError, match="unknown section 'dedupe'"):
        load_params(p, sections=("dedupe",))


def test_shipped_params_files_load_whole(repo_root):
    for name in ("params.yaml", "params-api.yaml"):
        params = load_params(repo_root / name)
        assert params.llm.default_teacher in params.llm.teachers and params.dedup and params.ingest


def test_loading_one_section_imports_only_its_module(repo_root):
    """Every stage loads params at start: a dedup run must not import the generation or LLM models."""
    code = ("import sys\nfrom distillery.core.params import load_params\n"
            f"p = load_params({str(repo_root / 'params.yaml')!r}, sections=('dedup',))\n"
            "print(sorted(m for m in sys.modules if m.startswith('distillery.') and m.endswith('.config')))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "['distillery.dedup.config', 'distillery.track.config']"
