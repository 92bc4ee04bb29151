"""The dedup stage end to end on small files: what is removed, what survives, and why."""

import gzip
import json
from pathlib import Path

import pytest

from distillery.dedup.config import DedupParams
from distillery.dedup import engine
from distillery.dedup.engine import run_dedup
from distillery.testing.jaccard_ref import exact_jaccard

from .helpers import edit, read, rec, text, write

NO_EVAL = {"decontaminate": {"enabled": False}}


def run(tmp_path: Path, records, name="out", max_line_bytes=4 << 20, **params):
    src = write(tmp_path / "in.jsonl", records)
    p = DedupParams.model_validate({**NO_EVAL, **params})
    out = tmp_path / name
    res = run_dedup([src], out, p, seed=42, max_line_bytes=max_line_bytes, plots_path=out / "sim.csv")
    return res.metrics, out


def ids(path):
    return [r["id"] for r in read(path)]


def corpus():
    base = [text(i) for i in range(30)]
    records = [rec(f"o{i:02d}", t) for i, t in enumerate(base)]
    records += [rec(f"x{i:02d}", base[i]) for i in range(3)]                      # exact copies
    records += [rec(f"n{i:02d}", edit(base[10 + i], 1, seed=i)) for i in range(5)]  # J ~ 0.85-0.9
    records += [rec(f"f{i:02d}", edit(base[20 + i], 12, seed=i)) for i in range(3)]  # J < 0.5: kept
    return records


def test_removes_exact_and_near_duplicates_and_keeps_far_ones(tmp_path):
    m, out = run(tmp_path, corpus(), workers=1)
    kept = set(ids(out / "records.jsonl"))
    q = read(out / "quarantine.jsonl")
    reasons = {r["record"]["id"]: (r["reason"], r["duplicate_of"]) for r in q}
    # id order breaks the tie: "n.." < "o.." so the edited copy is the one kept in near groups
    assert reasons == {**{f"x{i:02d}": ("exact_duplicate", f"o{i:02d}") for i in range(3)},
                       **{f"o{10 + i:02d}": ("near_duplicate", f"n{i:02d}") for i in range(5)}}
    assert {f"f{i:02d}" for i in range(3)} <= kept
    assert m["records_in"] == 41 and m["records_out"] == 33
    assert (m["exact_duplicates"], m["near_duplicates"], m["contaminated"]) == (3, 5, 0)
    assert m["clusters"] == 8 and m["largest_cluster"] == 2
    clusters = read(out / "clusters.jsonl")
    near = [c for c in clusters if c["kind"] == "near_duplicate"]
    assert all(0.8 <= c["min_similarity"] < 1.0 for c in near)
    # each reported similarity is the true Jaccard of the key texts
    by_id = {r["id"]: r for r in corpus()}
    for c in near:
        a = by_id[c["kept"]]["messages"]
        b = by_id[c["removed"][0]["id"]]["messages"]
        j = exact_jaccard("\n".join(x["content"] for x in a), "\n".join(x["content"] for x in b), 5)
        assert c["removed"][0]["similarity"] == pytest.approx(j, abs=1e-3)
    hist = (out / "sim.csv").read_text().splitlines()
    assert hist[0] == "similarity,similarity_hi,pairs,duplicates"
    assert sum(int(x.split(",")[3]) for x in hist[1:]) == 5
    for f in ("records.jsonl", "quarantine.jsonl", "clusters.jsonl", "contamination.jsonl"):
        assert (out / f).stat().st_mode & 0o044 == 0o044, f  # readable by the team, like every output


def test_threshold_means_jaccard_at_or_above(tmp_path):
    """Every pair at J >= threshold is removed, every pair below it kept (verified, not estimated)."""
    base = text(7, 120)
    variants = [edit(base, k, seed=k) for k in range(1, 16)]
    records = [rec("a", base, "")] + [rec(f"v{k:02d}", v, "") for k, v in enumerate(variants, 1)]
    m, out = run(tmp_path, records, workers=1, key="prompt")
    removed = {r["record"]["id"] for r in read(out / "quarantine.jsonl")}
    kept = set(ids(out / "records.jsonl"))
    for k, v in enumerate(variants, 1):
        j = exact_jaccard(base, v, 5)
        rid = f"v{k:02d}"
        if j >= 0.8:
            assert rid in removed or "a" in removed, (k, j)
        # a variant below the threshold against *every* kept record survives
        if all(exact_jaccard(v, t, 5) < 0.8 for t in [base] + variants if t != v):
            assert rid in kept, (k, j)
    assert removed == {"v01", "v02"}  # J = 0.92 and 0.89 to "a"; v03 (J = 0.77) and below stay


def test_keep_policy_score_then_source_priority_then_id(tmp_path):
    t = text(1)
    records = [rec("a", t, source="web"), rec("b", t, source="curated"), rec("c", t, source="web", score=6),
               rec("d", t, source="web", score=9), rec("e", t, source="other", score=9)]
    _, out = run(tmp_path, records, workers=1, source_priority=["curated", "other"])
    assert ids(out / "records.jsonl") == ["e"]  # 9 > 6 > none; at 9, "other" is listed before "web"
    _, out = run(tmp_path, records[:2], "o2", workers=1, source_priority=["curated"])
    assert ids(out / "records.jsonl") == ["b"]
    _, out = run(tmp_path, records[:2], "o3", workers=1)
    assert ids(out / "records.jsonl") == ["a"]  # no scores, no priority: id order


def test_key_selects_what_counts_as_the_same(tmp_path):
    p1, p2 = text(1), text(2)
    a1, a2 = text(3), text(4)
    records = [rec("a", p1, a1), rec("b", p1, a2), rec("c", p2, a1)]
    for key, expect in (("prompt", ["a", "c"]), ("response", ["a", "b"]), ("conversation", ["a", "b", "c"])):
        _, out = run(tmp_path, records, key, workers=1, key=key)
        assert ids(out / "records.jsonl") == expect, key
    dpo = [rec("p", p1, a1, kind="preference"), rec("q", p1, a1, kind="preference"),
           rec("r", p1, a2, kind="preference")]
    _, out = run(tmp_path, dpo, "dpo", workers=1, key="prompt_chosen")
    assert ids(out / "records.jsonl") == ["p", "r"]


def test_per_source_mode_keeps_copies_across_sources(tmp_path):
    t = text(5)
    records = [rec("a", t, source="s1"), rec("b", t, source="s2"), rec("c", t, source="s1"),
               rec("d", edit(t, 1), source="s2")]
    _, out = run(tmp_path, records, workers=1)
    assert ids(out / "records.jsonl") == ["a"]
    _, out = run(tmp_path, records, "per", workers=1, cross_source=False)
    assert ids(out / "records.jsonl") == ["a", "b"]


def test_same_output_whatever_the_worker_count(tmp_path, monkeypatch):
    records = corpus() * 1 + [rec(f"z{i:03d}", edit(text(100 + i % 7), 1 + i % 4, seed=i)) for i in range(120)]
    monkeypatch.setattr(engine, "_MAX_OPEN", 2)   # far fewer spill files open than batches: verification reopens
    monkeypatch.setattr(engine, "VERIFY_TASK_PAIRS", 5)   # and many small verification tasks
    outs = []
    for w, bs in ((1, 1000), (2, 7), (3, 16)):
        _, out = run(tmp_path, records, f"w{w}", workers=w, batch_size=bs)
        outs.append({f: (out / f).read_bytes() for f in ("records.jsonl", "quarantine.jsonl", "clusters.jsonl")})
    assert outs[0] == outs[1] == outs[2]


def test_kept_lines_are_the_input_bytes_whatever_the_line_endings(tmp_path):
    """CRLF lines, blank lines, a bad line and a last line without a newline, over many small batches: every
    kept record is its input line byte for byte (ending in one newline), every other line is quarantined
    once, and one worker or three write the same files."""
    recs = corpus()
    lines = [json.dumps(r, ensure_ascii=False).encode() for r in recs]
    blob = b""
    for i, line in enumerate(lines):
        end = b"\r\n" if i % 5 == 1 else b"\n"
        blob += line + (b"" if i == len(lines) - 1 else end)      # the file ends without a newline
        if i % 9 == 4:
            blob += b"\n   \n"                                  # blank lines: no record
        if i == 7:
            blob += b"{not json\n"                               # a bad line
    src = tmp_path / "in.jsonl"
    src.write_bytes(blob)
    outs = []
    for w, bs in ((1, 1000), (3, 4)):
        p = DedupParams.model_validate({**NO_EVAL, "workers": w, "batch_size": bs})
        m = run_dedup([src], tmp_path / f"w{w}", p, seed=42, max_line_bytes=4 << 20).metrics
        outs.append({f: (tmp_path / f"w{w}" / f).read_bytes() for f in ("records.jsonl", "quarantine.jsonl")})
    assert outs[0] == outs[1]
    gz = tmp_path / "in.jsonl.gz"                 # no byte ranges to read again: the parent sends the batches
    gz.write_bytes(gzip.compress(blob))
    p = DedupParams.model_validate({**NO_EVAL, "workers": 3, "batch_size": 4})
    run_dedup([gz], tmp_path / "gz", p, seed=42, max_line_bytes=4 << 20)
    assert (tmp_path / "gz" / "records.jsonl").read_bytes() == outs[0]["records.jsonl"]
    assert (tmp_path / "gz" / "quarantine.jsonl").read_bytes() == outs[0]["quarantine.jsonl"].replace(
        str(src).encode(), str(gz).encode())
    kept = outs[0]["records.jsonl"].split(b"\n")
    assert kept.pop() == b""
    by_id = {r["id"]: line for r, line in zip(recs, lines)}
    assert [json.loads(k)["id"] for k in kept] == ids(tmp_path / "w1" / "records.jsonl")
    assert all(k == by_id[json.loads(k)["id"]] for k in kept), "kept lines are copied as read, minus the CR"
    q = [json.loads(x) for x in outs[0]["quarantine.jsonl"].splitlines()]
    assert sorted(r["reason"] for r in q) == sorted(["malformed_json"] + ["exact_duplicate"] * 3 + ["near_duplicate"] * 5)
    assert m["records_in"] == len(recs) + 1 == len(kept) + len(q)


# ---------------------------------------------------------------- bad input
def test_empty_text_single_token_and_bad_lines(tmp_path):
    records = [rec("e1", "", ""), rec("e2", "   ", "\n"), rec("s1", "Hi", ""), rec("s2", "hi!", ""),
               rec("s3", "Bye", ""), "this is not json", "[1, 2]"]
    m, out = run(tmp_path, records, workers=1)
    q = {(r.get("record") or {}).get("id", (r.get("raw") or "").strip()): r["reason"] for r in read(out / "quarantine.jsonl")}
    assert q["this is not json"] == "malformed_json" and q["[1, 2]"] == "not_an_object"
    empty = [r for r in read(out / "quarantine.jsonl") if r["reason"] == "empty_text"]
    assert len(empty) == 2 and all(r["line"] in (1, 2) for r in empty)
    # "Hi" and "hi!" normalise to one token sequence: one survives; "Bye" is different
    assert ids(out / "records.jsonl") in (["s1", "s3"], ["s2", "s3"])
    assert m["bad_input_by_reason"] == {"empty_text": 2, "malformed_json": 1, "not_an_object": 1}


def test_five_megabyte_record(tmp_path):
    big = text(9, 800_000)  # ~5 MB of text
    records = [rec("big", big, ""), rec("big2", big + " tail", ""), rec("small", text(1), "")]
    assert len(json.dumps(records[0])) > 5_000_000
    m, out = run(tmp_path, records, workers=1)  # default line limit: quarantined, not crashed
    assert {r["reason"] for r in read(out / "quarantine.jsonl")} == {"record_too_large"}
    m, out = run(tmp_path, records, "big", max_line_bytes=64 << 20, workers=2)
    assert ids(out / "records.jsonl") == ["big", "small"]
    assert read(out / "quarantine.jsonl")[0]["duplicate_of"] == "big"


def test_all_identical_input(tmp_path):
    records = [rec(f"r{i:04d}", text(3)) for i in range(500)]
    m, out = run(tmp_path, records, workers=2, batch_size=64)
    assert ids(out / "records.jsonl") == ["r0000"]
    assert m["exact_duplicates"] == 499 and m["largest_cluster"] == 500


def test_empty_file(tmp_path):
    m, out = run(tmp_path, [], workers=2)
    assert m["records_in"] == 0 and m["records_out"] == 0
    for f in ("records.jsonl", "quarantine.jsonl", "clusters.jsonl", "contamination.jsonl"):
        assert (out / f).read_text() == ""
    assert not list(out.glob(".dedup-spill-*"))


def test_cjk_near_duplicates_are_found(tmp_path):
    a = "我们今天一起去公园散步，然后在湖边吃午饭，下午回家休息一会儿，晚上看一部电影再睡觉。" * 2
    b = a.replace("电影", "电视", 1)
    c = "机器学习是人工智能的一个分支，研究计算机如何从数据中学习规律，并用规律预测未知的数据。" * 2
    _, out = run(tmp_path, [rec("a", a, ""), rec("b", b, ""), rec("c", c, "")], workers=1)
    assert ids(out / "records.jsonl") == ["a", "c"]


def test_signature_verification_agrees_on_clear_cases(tmp_path):
    _, exact = run(tmp_path, corpus(), "exact", workers=2)
    _, sig = run(tmp_path, corpus(), "sig", workers=2, verify="signature")
    assert ids(exact / "records.jsonl") == ids(sig / "records.jsonl")


def test_mixed_scripts_and_lone_surrogates_in_one_batch(tmp_path):
    """A batch that is not all ASCII (accents, Greek, emoji, a lone surrogate escape, which JSON allows
    and ingest would quarantine) still dedups: near copies found across scripts, nothing crashes."""
    base = ("Ο δρόμος προς το σπίτι ήταν μακρύς και ο ήλιος έδυε πίσω από τα βουνά, ενώ τα παιδιά έπαιζαν "
            "στην πλατεία του χωριού και οι γιαγιάδες κάθονταν στα σκαλιά μιλώντας για τον καιρό και τη σοδειά "
            "της χρονιάς που πέρασε, όταν η βροχή ήρθε αργά και τα αμπέλια άργησαν να ωριμάσουν.")
    latin = ("Le café était fermé, alors nous avons marché jusqu'à la gare sous la pluie fine, en parlant "
             "de nos projets pour l'été et des livres que nous voulions lire avant la rentrée de septembre.")
    records = [rec("g1", base, ""), rec("g2", base.replace("μακρύς", "σύντομος", 1), ""),  # J = 0.81
               rec("l1", latin, ""), rec("l2", latin.upper() + " 😀", ""),  # same tokens
               json.dumps(rec("s1", "bad \ud800 text here " * 5, "")),  # ASCII-escaped: "\\ud800" in the file
               rec("a1", text(4), "")]
    m, out = run(tmp_path, records, workers=1)
    assert ids(out / "records.jsonl") == ["g1", "l1", "s1", "a1"]
    assert m["near_duplicates"] == 2 and m["bad_input"] == 0
