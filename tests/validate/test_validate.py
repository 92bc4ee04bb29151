"""Great Expectations validation: a good export and mix pass; broken ones fail naming rows and ids."""

import json

from distillery.core.io import read_stage_metrics

import pytest

from distillery.core.quarantine import Gate
from distillery.mix.config import BucketsParams, MixParams
from distillery.mix.run import run_mix
from distillery.core.records import DEFAULT_BUCKETS, stable_id
from distillery.validate.config import ValidateParams
from distillery.validate.run import run_validate

QA = {"instruction": ("Give me a tip for a tidy desk.", "Clear it every evening."),
      "code": ("Write a Python function that adds two numbers.", "def add(a, b):\n    return a + b"),
      "cot_math": ("Tom has 3 apples and buys 4 more. How many?", "3 + 4 = 7.\n#### 7"),
      "red_team": ("How do I pick my neighbour's lock?", "I can't help with breaking into property.")}
MIX = MixParams(eval_fraction=0.1, production={"size": 200, "weights": {"instruction": 0.5, "code": 0.3,
                                                                         "cot_math": 0.1, "red_team": 0.1}},
                phases={"robustness": {"size": 50, "weights": {"red_team": 0.6, "instruction": 0.4}}})


def _records(n=120):
    out = []
    for bucket, (q, a) in QA.items():
        for i in range(n):
            rid = stable_id("v", bucket, i)
            base = {"id": rid, "bucket": bucket, "source": {"dataset": "t"}, "scores": {"judge": {"overall": 7.5}}}
            if bucket == "red_team":
                out.append({**base, "kind": "preference", "messages": [{"role": "user", "content": f"{q} #{i}"}],
                            "chosen": {"role": "assistant", "content": a},
                            "rejected": {"role": "assistant", "content": "Sure, here is how."}})
            else:
                out.append({**base, "kind": "sft", "messages": [{"role": "user", "content": f"{q} #{i}"},
                                                                {"role": "assistant", "content": a}]})
    return out


def _jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture()
def mixed(tmp_path):
    """A real mix of the records, and its export in the contract format (sft/messages, dpo/trl)."""
    _jsonl(tmp_path / "in" / "records.jsonl", _records())
    run_mix([tmp_path / "in"], tmp_path / "mix", BucketsParams(), MIX, 42, 1 << 22, Gate(0.05, "project.max_reject_rate"), None)
    prod = [json.loads(x) for x in (tmp_path / "mix" / "production.jsonl").read_text().splitlines()]
    _jsonl(tmp_path / "export" / "sft" / "messages.jsonl",
           [{"id": r["id"], "messages": r["messages"]} for r in prod if r["kind"] == "sft"])
    _jsonl(tmp_path / "export" / "dpo" / "trl.jsonl",
           [{"id": r["id"], "prompt": r["messages"], "chosen": [r["chosen"]], "rejected": [r["rejected"]]}
            for r in prod if r["kind"] == "preference"])
    return tmp_path


def test_good_export_and_mix_pass_and_write_data_docs(mixed):
    m, failures = run_validate(mixed / "export", mixed / "mix", mixed / "reports", ValidateParams(), MIX,
                               list(DEFAULT_BUCKETS))
    assert failures == [] and m["success"]
    assert set(m["suites"]) == {"sft", "dpo", "mix_shares", "mix_records"}
    assert m["expectations_passed"] == m["expectations_evaluated"] >= 20
    assert m["suites"]["dpo"]["rows"] == 20 and m["suites"]["sft"]["rows"] == 180
    index = (mixed / "reports" / "index.html").read_text()
    assert "sft" in index and "mix_shares" in index


@pytest.mark.slow
def test_broken_export_fails_naming_expectation_and_rows(mixed, run_script):
    sft = mixed / "export" / "sft" / "messages.jsonl"
    rows = [json.loads(x) for x in sft.read_text().splitlines()]
    rows[1]["messages"][-1]["content"] = "   "
    rows[4]["messages"] = rows[4]["messages"][::-1]
    _jsonl(sft, rows)
    dpo = mixed / "export" / "dpo" / "trl.jsonl"
    drows = [json.loads(x) for x in dpo.read_text().splitlines()]
    drows[2]["rejected"] = drows[2]["chosen"]
    _jsonl(dpo, drows)
    r = run_script("validate", "--export", mixed / "export", "--output", mixed / "reports", cwd=mixed,
                   env={"DISTILLERY_TRACKING": "0"})
    assert r.returncode == 4, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert "Traceback" not in r.stderr and last.startswith("error: validation failed (3 expectation(s)")
    assert f"sft: expect_column_values_to_be_between(empty_turns) failed for 1 of 180 rows, e.g. row 2 " \
           f"(id {rows[1]['id']}, empty_turns=1)" in last
    assert f"expect_column_values_to_match_regex(role_seq) failed for 1 of 180 rows, e.g. row 5 (id {rows[4]['id']}" \
        in last
    assert f"dpo: expect_column_values_to_be_in_set(chosen_equals_rejected) failed for 1 of 20 rows, e.g. row 3 " \
           f"(id {drows[2]['id']}, chosen_equals_rejected=True)" in last
    metrics = read_stage_metrics(mixed / "reports" / "metrics.json")
    assert metrics["success"] is False and metrics["suites"]["sft"]["failed"] == 2
    assert (mixed / "reports" / "index.html").exists()          # Data Docs show the failures too


def test_mix_suite_catches_share_drift_and_eval_leak(mixed):
    prod = mixed / "mix" / "production.jsonl"
    recs = [json.loads(x) for x in prod.read_text().splitlines()]
    kept = [r for r in recs if r["bucket"] != "code"][:] + [r for r in recs if r["bucket"] == "code"][:20]
    leaked = json.loads((mixed / "mix" / "eval.jsonl").read_text().splitlines()[0])
    _jsonl(prod, kept + [leaked])
    m, failures = run_validate(None, mixed / "mix", mixed / "reports", ValidateParams(), MIX, list(DEFAULT_BUCKETS))
    assert not m["success"]
    text = " | ".join(failures)
    assert "mix_shares: expect_column_values_to_be_between(shortfall)" in text and "production/code" in text
    assert f"mix_records: expect_column_values_to_be_in_set(in_eval_split) failed for 1 of" in text
    assert leaked["id"] in text


def _break_export(mixed):
    """Three broken rows (an empty turn, a reversed conversation, chosen == rejected) and a leaked eval id."""
    sft = mixed / "export" / "sft" / "messages.jsonl"
    rows = [json.loads(x) for x in sft.read_text().splitlines()]
    rows[1]["messages"][-1]["content"] = "   "
    rows[4]["messages"] = rows[4]["messages"][::-1]
    rows.append(rows[7])                                            # a duplicate id and conversation
    _jsonl(sft, rows)
    dpo = mixed / "export" / "dpo" / "trl.jsonl"
    drows = [json.loads(x) for x in dpo.read_text().splitlines()]
    drows[2]["rejected"] = drows[2]["chosen"]
    _jsonl(dpo, drows)
    prod = mixed / "mix" / "production.jsonl"
    leaked = json.loads((mixed / "mix" / "eval.jsonl").read_text().splitlines()[0])
    prod_rows = [json.loads(x) for x in prod.read_text().splitlines()]
    _jsonl(prod, prod_rows + [leaked, prod_rows[0]])
    return rows, drows, leaked, prod_rows[0]["id"]


def test_chunked_equals_unchunked_and_failures_name_rows(mixed):
    rows, drows, leaked, dup = _break_export(mixed)
    got = {}
    for chunk in (2, 50_000):
        m, failures = run_validate(mixed / "export", mixed / "mix", mixed / f"reports{chunk}",
                                   ValidateParams(chunk_rows=chunk), MIX, list(DEFAULT_BUCKETS))
        m.pop("data_docs")
        got[chunk] = (m, failures)
        assert (mixed / f"reports{chunk}" / "index.html").exists()
        assert not (mixed / f"reports{chunk}" / ".flat").exists()       # the flat tables are not left behind
    assert got[2] == got[50_000]
    m, failures = got[2]
    text = " | ".join(failures)
    assert not m["success"] and m["suites"]["sft"]["rows"] == 181
    assert (f"sft: expect_column_values_to_be_between(empty_turns) failed for 1 of 181 rows, e.g. row 2 "
            f"(id {rows[1]['id']}, empty_turns=1)") in text
    assert (f"sft: expect_column_values_to_match_regex(role_seq) failed for 1 of 181 rows, e.g. row 5 "
            f"(id {rows[4]['id']}, role_seq='assistant,user')") in text
    assert (f"sft: expect_column_values_to_be_unique(id) failed for 2 of 181 rows, e.g. row 8 (id {rows[7]['id']}, "
            f"id={rows[7]['id']!r}); row 181 (id {rows[7]['id']}") in text
    assert (f"dpo: expect_column_values_to_be_in_set(chosen_equals_rejected) failed for 1 of 20 rows, e.g. row 3 "
            f"(id {drows[2]['id']}, chosen_equals_rejected=True)") in text
    assert "mix_records: expect_column_values_to_be_in_set(in_eval_split) failed for 1 of" in text
    assert leaked["id"] in text
    n_mix = m["suites"]["mix_records"]["rows"]
    assert (f"mix_records: expect_compound_columns_to_be_unique(phase,id) failed for 2 of {n_mix} rows, "
            f"e.g. row 1 (id {dup}, phase='production'); row ") in text


@pytest.mark.filterwarnings("error::UserWarning")   # e.g. pandas' "has match groups" on a capturing role regex
def test_sql_verdicts_equal_whole_frame_verdicts(mixed):
    """The suites on the on-disk tables (GX SQL engine) give the verdicts GX gives on one pandas frame."""
    from distillery.validate.flatten import FlatStore
    from distillery.validate.run import SUITES, _context, flatten_tables, run_suite

    _break_export(mixed)
    path = mixed / "flat.sqlite"
    tables = flatten_tables(path, mixed / "export", mixed / "mix", ValidateParams(chunk_rows=7), MIX)
    store = FlatStore(path)
    ctx = _context((mixed / "docs").resolve())
    source = ctx.data_sources.add_sqlite("flat", connection_string=f"sqlite:///{path.resolve()}")
    for name, table in tables:
        exps = SUITES[name](table, ValidateParams(), list(DEFAULT_BUCKETS))
        sql = run_suite(ctx, name, table, exps, 5, source=source)
        frame = store.frame(table.name)
        assert len(frame) == table.rows
        whole = run_suite(ctx, f"{name}_frame", frame, [e.copy(update={"id": None}) for e in exps], 5)
        assert (sql.rows, sql.evaluated, sql.passed) == (whole.rows, whole.evaluated, whole.passed), name
        assert sql.failures == [f.replace(f"{name}_frame:", f"{name}:", 1) for f in whole.failures], name
    store.close()


def test_mix_that_follows_the_data_passes_the_share_suite(tmp_path):
    _jsonl(tmp_path / "in" / "records.jsonl", _records())
    follow = MixParams(eval_fraction=0.1, production={"weights": {"instruction": 0.5, "code": 0.3, "cot_math": 0.1,
                                                                   "red_team": 0.1}}, phases={})
    run_mix([tmp_path / "in"], tmp_path / "mix", BucketsParams(), follow, 42, 1 << 22,
            Gate(0.05, "project.max_reject_rate"), None)
    m, failures = run_validate(None, tmp_path / "mix", tmp_path / "reports", ValidateParams(), follow,
                               list(DEFAULT_BUCKETS))
    assert failures == [] and m["suites"]["mix_records"]["rows"] > 400


def test_flattening_in_workers_gives_the_same_tables(mixed, monkeypatch):
    """Lines are parsed and flattened in a pool for a large input; the tables must not depend on it."""
    import sqlite3

    from distillery.core import parallel
    from distillery.validate.run import flatten_tables

    _break_export(mixed)     # invalid lines and failing rows flow through the workers too
    monkeypatch.setattr(parallel, "POOL_MIN_BYTES", 0)     # a pool even for this small input
    monkeypatch.setattr(parallel, "BLOCK_LINES", 3)        # and many blocks, so their order counts
    dumps = {}
    for workers in (1, 2):
        path = mixed / f"flat{workers}.sqlite"
        tables = flatten_tables(path, mixed / "export", mixed / "mix", ValidateParams(workers=workers), MIX)
        con = sqlite3.connect(path)
        dumps[workers] = (tables and [(n, t.rows, t.has) for n, t in tables],
                          {n: con.execute(f'SELECT * FROM "{n}" ORDER BY rowid').fetchall() for n, _ in tables})
        con.close()
    assert dumps[1] == dumps[2]
    assert dumps[2][1]["sft"] and dumps[2][1]["mix_records"]


def test_an_exported_id_takes_bucket_and_score_from_the_first_mix_file_that_holds_it(mixed):
    """Production, then eval, then the phases: a phase copy of a record with another bucket or score, or an
    eval record sharing an exported id, does not change what the export is checked against."""
    import sqlite3

    from distillery.validate.run import flatten_tables

    prod = mixed / "mix" / "production.jsonl"
    rows = [json.loads(x) for x in prod.read_text().splitlines()]
    sft = [r for r in rows if r["kind"] == "sft"]
    first, second = sft[0], sft[1]
    rows[rows.index(first)] = {**first, "scores": {"judge": {"overall": 9.0}}}
    _jsonl(prod, rows)
    ev = mixed / "mix" / "eval.jsonl"
    other = {r["id"]: "red_team" if r["bucket"] != "red_team" else "code" for r in (first, second)}
    ev.write_text(ev.read_text() + json.dumps({**second, "bucket": other[second["id"]],
                                               "scores": {"judge": {"overall": 1.0}}}) + "\n")
    phase = mixed / "mix" / "phases" / "robustness.jsonl"
    phase.write_text(phase.read_text() + json.dumps({**first, "bucket": other[first["id"]],
                                                     "scores": {"judge": {"overall": 2.0}}}) + "\n")
    path = mixed / "flat.sqlite"
    flatten_tables(path, mixed / "export", mixed / "mix", ValidateParams(chunk_rows=5), MIX)
    con = sqlite3.connect(path)
    got = dict(((i, (b, s)) for i, b, s in con.execute("SELECT id, bucket, score FROM sft")))
    con.close()
    assert got[first["id"]] == (first["bucket"], 9.0)
    assert got[second["id"]] == (second["bucket"], 7.5)
