"""`check_record` (the plain-Python stage-boundary check) against the bad-record corpus, against the
pydantic `Record` model (same verdict, pinned on the corpus and on seeded random mutations), and
against what the shipped pipeline produces (every ingested record of the shipped samples is valid)."""

import copy
import json
import math
import random
from collections import OrderedDict
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from distillery.core.io import BadLine, iter_jsonl
from distillery.core.records import REASONS, Invalid, Record, _diagnose, check_record

DATA = Path(__file__).resolve().parents[1] / "data"
CORPUS = DATA / "bad_records.jsonl"
EXPECTED = {int(k): v for k, v in json.loads((DATA / "bad_records.expected.json").read_text()).items()}


def model_ok(rec) -> bool:
    try:
        Record.model_validate(rec)
        return True
    except ValidationError:
        return False


def corpus() -> list[tuple[int, object]]:
    """(line, dict or BadLine) as the stages' reader yields them."""
    return list(iter_jsonl(CORPUS))


def parsed_corpus() -> list[tuple[int, object]]:
    """(line, any JSON value) for every line that parses, JSON arrays and strings included."""
    out = []
    for n, line in enumerate(CORPUS.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            out.append((n, json.loads(line)))
        except json.JSONDecodeError:
            pass
    return out


def test_corpus_has_an_expectation_for_every_line():
    assert sorted(EXPECTED) == list(range(1, len(CORPUS.read_text(encoding="utf-8").splitlines()) + 1))
    assert set(EXPECTED.values()) - {"ok", "malformed_json"} == set(REASONS)  # every reason is exercised


@pytest.mark.parametrize("line,item", corpus(), ids=lambda x: str(x) if isinstance(x, int) else "")
def test_corpus_reasons(line, item):
    """The reader's reason for lines that are not objects, else the checker's."""
    got = item.reason if isinstance(item, BadLine) else (check_record(item) or Invalid("ok")).reason
    assert got == EXPECTED[line], f"line {line}: {check_record(item) if isinstance(item, dict) else item}"


def test_not_an_object_without_the_reader():
    assert check_record([{"id": "x"}]) == Invalid("not_an_object", "list")
    assert check_record(None).reason == "not_an_object"


def test_details_name_the_field():
    assert check_record(json.loads(CORPUS.read_text().splitlines()[5])).detail == "messages: expected a list"
    bad = {**json.loads(CORPUS.read_text().splitlines()[0]), "scores": {"judge": {"overall": math.nan}}}
    assert check_record(bad) == Invalid("non_finite_number", "scores.judge.overall")


@pytest.mark.parametrize("line,obj", parsed_corpus(), ids=lambda x: str(x) if isinstance(x, int) else "")
def test_corpus_verdict_equals_the_model(line, obj):
    assert (check_record(obj) is None) == model_ok(obj) == (_diagnose(obj) is None)


class S(str):
    pass


class F(float):
    pass


BASE = json.loads(CORPUS.read_text(encoding="utf-8").splitlines()[0])


@pytest.mark.parametrize("change,valid", [
    ({"labels": {1: "x"}}, False), ({"scores": {1: 2}}, False), ({"lineage": [{1: 2}]}, False),
    ({1: 2}, False), ({"source": {"dataset": "d", 1: 2}}, False), ({"messages": tuple(BASE["messages"])}, False),
    ({"id": b"x"}, False), ({"source": {"dataset": "d", "row": True}}, False),
    ({"source": {"dataset": "d", "row": 3.0}}, False), ({"scores": {"x": F("nan")}}, False),
    ({"id": S("x"), "kind": S("sft")}, True), ({"scores": {"x": F(1)}}, True),
    ({"messages": [{"role": S("user"), "content": S("q")}, OrderedDict(role="assistant", content="a")]}, True),
], ids=repr)
def test_python_values_json_never_yields(change, valid):
    """Readers yield plain JSON types; the verdict still matches the model for other Python values
    (non-string keys, subclasses, tuples), which then take the full checks."""
    rec = {**BASE, **change}
    assert (check_record(rec) is None) == model_ok(rec) == valid


# --- seeded random mutations: the checker and the model must never disagree -----------------------

VALUES = [None, True, False, 0, 7, -3, 2.5, math.nan, math.inf, -math.inf, "", "x", "user", "assistant",
          "system", "sft", "preference", [], [1], ["a"], [{"role": "user", "content": "q"}], {}, {"a": 1},
          {"role": "assistant", "content": "a"}, {"role": "assistant"}, {"x": math.nan}, [[math.inf]],
          {"dataset": "d"}, {"k": {"v": [1.5, {"w": -math.inf}]}}]


def slots(obj, out):
    """Every (container, key) pair inside obj."""
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for k, v in list(items):
        out.append((obj, k))
        slots(v, out)
    return out


def mutate(rec: dict, rng: random.Random) -> dict:
    rec = copy.deepcopy(rec)
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        parent, key = rng.choice(slots(rec, [(None, None)]))
        if parent is None:  # the record itself: add or drop a top-level field
            if rng.random() < 0.5 and rec:
                rec.pop(rng.choice(list(rec)))
            else:
                rec[rng.choice(["weight", "phase", "chosen", "rejected", "bucket", "lineage", "scores",
                                "labels"])] = copy.deepcopy(rng.choice(VALUES))
            continue
        op = rng.random()
        if op < 0.55:
            parent[key] = copy.deepcopy(rng.choice(VALUES))
        elif op < 0.75 and isinstance(parent, dict):
            del parent[key]
        elif op < 0.9:
            parent[key] = rng.choice((math.nan, math.inf, -math.inf))
        elif isinstance(parent, dict):
            parent[rng.choice(["extra", "role", "content", "row", "revision", "overall"])] = \
                copy.deepcopy(rng.choice(VALUES))
    return rec


def test_random_mutations_get_the_models_verdict():
    """A few thousand mutants of valid records (wrong types, deleted fields, NaN/Infinity inserted)."""
    seeds = [obj for line, obj in parsed_corpus() if EXPECTED[line] == "ok"]
    rng = random.Random(20240611)
    verdicts = {True: 0, False: 0}
    for i in range(4000):
        rec = mutate(rng.choice(seeds), rng)
        ok = model_ok(rec)
        got = check_record(rec)
        assert (got is None) == ok == (_diagnose(rec) is None), (i, got, rec)
        assert got is None or got.reason in REASONS
        verdicts[ok] += 1
    assert verdicts[True] > 300 and verdicts[False] > 2000, verdicts  # both sides are exercised


# --- what the pipeline produces is valid -----------------------------------------------------------

@pytest.fixture(scope="module")
def shipped_records(tmp_path_factory):
    """Every record of every shipped source, ingested as `ingest@NAME` does (library call, ~5 s)."""
    from distillery.sources.config import IngestParams
    from distillery.sources.ingest import ingest_source

    repo = Path(__file__).resolve().parents[2]
    data = yaml.safe_load((repo / "params.yaml").read_text(encoding="utf-8"))["ingest"]
    for spec in data["sources"].values():
        spec["path"] = str(repo / spec["path"])
    params = IngestParams.model_validate(data)
    root = tmp_path_factory.mktemp("ingest")
    out = {}
    for name, spec in params.sources.items():
        ingest_source(name, spec, params.defaults, root / name, max_row_bytes=4 << 20)
        out[name] = [rec for _, rec in iter_jsonl(root / name / "records.jsonl")]
    return out


def test_every_ingested_record_is_valid(shipped_records):
    kinds = set()
    for name, recs in shipped_records.items():
        assert recs, name
        for rec in recs:
            assert check_record(rec) is None and _diagnose(rec) is None, (name, check_record(rec), rec["id"])
            assert model_ok(rec), (name, rec["id"])
            kinds.add(rec["kind"])
    assert kinds == {"sft", "preference"}
