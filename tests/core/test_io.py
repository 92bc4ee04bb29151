"""Streaming JSONL: bad lines become reasons, writes are atomic, gzip round-trips byte-identically."""

import gzip
import os
import subprocess
import sys

import pytest

from distillery.core.errors import InputError
from distillery.core.io import AtomicWriter, BadLine, input_files, iter_jsonl, write_jsonl


def test_bad_lines_are_reported_with_reasons_and_line_numbers(tmp_path):
    p = tmp_path / "in.jsonl"
    p.write_bytes(b'{"a": 1}\n{not json\n\n[1, 2]\n\xff\xfe bad utf8\n' + b'{"big": "' + b"x" * 2000 + b'"}\n')
    out = list(iter_jsonl(p, max_line_bytes=1000))
    assert out[0] == (1, {"a": 1})
    reasons = [(ln, o.reason) for ln, o in out[1:]]
    assert reasons == [(2, "malformed_json"), (4, "not_an_object"), (5, "invalid_utf8"), (6, "record_too_large")]
    assert all(isinstance(o, BadLine) for _, o in out[1:])


def test_gzip_round_trip_is_deterministic(tmp_path):
    recs = [{"id": str(i), "text": "héllo ✓"} for i in range(100)]
    a, b = tmp_path / "a.jsonl.gz", tmp_path / "b.jsonl.gz"
    write_jsonl(a, recs)
    write_jsonl(b, recs)
    assert a.read_bytes() == b.read_bytes()
    assert [o for _, o in iter_jsonl(a)] == recs
    assert gzip.decompress(a.read_bytes()).decode().count("\n") == 100


def test_failed_write_leaves_no_file_and_keeps_the_old_one(tmp_path):
    target = tmp_path / "out.jsonl"
    target.write_text("old\n")
    with pytest.raises(RuntimeError):
        with AtomicWriter(target) as w:
            w.write_record({"x": 1})
            raise RuntimeError("killed")
    assert target.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["out.jsonl"]


def test_sigkill_mid_write_leaves_the_target_untouched(tmp_path):
    target = tmp_path / "out.jsonl"
    code = (f"import os, signal\nfrom distillery.core.io import AtomicWriter\n"
            f"with AtomicWriter({str(target)!r}) as w:\n"
            f"    for i in range(1000): w.write_record({{'i': i}})\n"
            f"    os.kill(os.getpid(), signal.SIGKILL)\n")
    r = subprocess.run([sys.executable, "-c", code])
    assert r.returncode == -9
    assert not target.exists()


def test_missing_input_is_one_clear_error(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        list(iter_jsonl(tmp_path / "nope.jsonl"))
    with pytest.raises(InputError, match="input not found"):
        input_files([tmp_path / "nope"])


def test_input_dirs_expand_sorted(tmp_path):
    for name in ("b", "a"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "records.jsonl").write_text("{}\n")
    (tmp_path / "a" / "quarantine.jsonl").write_text("{}\n")
    assert input_files([tmp_path]) == [tmp_path / "a" / "records.jsonl", tmp_path / "b" / "records.jsonl"]


def test_outputs_get_normal_permissions(tmp_path):
    p = tmp_path / "out.jsonl"
    write_jsonl(p, [{"a": 1}])
    assert p.stat().st_mode & 0o044 == 0o044  # group/other can read (mkstemp alone gives 0600)


@pytest.mark.parametrize("gz", [False, True])
def test_line_blocks_cut_every_nth_line_and_lose_nothing(tmp_path, gz):
    """Blocks of n whole lines, numbered, whatever the read size: what the dedup parent hands out."""
    import random

    from distillery.core.io import iter_line_blocks, split_lines

    rng = random.Random(0)
    for trial in range(40):
        lines = [b"x" * rng.choice([0, 1, 5, 300]) + (b"\r" if rng.random() < .1 else b"") + b"\n"
                 for _ in range(rng.randint(0, 50))]
        if lines and trial % 2:
            lines[-1] = b"last" + lines[-1].rstrip(b"\n")  # no final newline
        path = tmp_path / (f"t{trial}.jsonl" + (".gz" if gz else ""))
        (gzip.open if gz else open)(path, "wb").write(b"".join(lines))
        n = rng.randint(1, 9)
        got = []
        for first, blob in iter_line_blocks(path, n, read_bytes=rng.choice([1, 7, 1 << 20])):
            part = split_lines(blob)
            assert first == len(got) + 1 and (len(part) == n or len(got) + len(part) == len(lines))
            got += part
        assert got == lines


def test_binary_outputs_are_atomic_with_normal_permissions(tmp_path):
    """`atomic_file` (the dedup stage's records.jsonl): renamed in only on success, readable by others."""
    from distillery.core.io import atomic_file

    p = tmp_path / "records.jsonl"
    p.write_bytes(b"old\n")
    with pytest.raises(RuntimeError):
        with atomic_file(p) as fh:
            fh.write(b"half")
            raise RuntimeError("killed")
    assert p.read_bytes() == b"old\n" and [f.name for f in tmp_path.iterdir()] == ["records.jsonl"]
    with atomic_file(p) as fh:
        fh.write(b"new\n")
    assert p.read_bytes() == b"new\n" and p.stat().st_mode & 0o044 == 0o044


# orjson reads and writes records; where it differs from the json module (which the files were always
# spelt by) the json module must decide: these are the values where the two differ.
JSON_EDGE_VALUES = [
    {"big": 123456789012345678901234567890, "neg": -9223372036854775809, "u64": 18446744073709551615},
    {"tiny": 2.5e-05, "tinier": 2.5640282347574327e-07, "small": 0.0001, "huge": 1e16, "neg0": -0.0},
    {"nan": float("nan"), "inf": float("-inf")},
    {"none": None, "text": "é \u2028 \x1f \x7f 😀", "nested": [{"a": [1, 2.5, True]}]},
    {1: "int key", None: "null key"},
]


@pytest.mark.parametrize("obj", JSON_EDGE_VALUES)
def test_dumps_spells_records_as_the_json_module_does(obj):
    import json

    from distillery.core.io import dumps

    assert dumps(obj) == json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def test_reader_reads_what_the_json_module_reads(tmp_path):
    import json

    lines = ['{"big": 123456789012345678901234567890}', '{"n": NaN, "i": -Infinity}', '{"s": "\\ud800"}',
             '{"x": 1E400}', '{"a": 1, "b": 2, "a": 3}', '{"f": 0.1000000000000000055511151231257827, "z": -0}',
             '{"t": "caf\\u00e9 \u00e9"}']
    p = tmp_path / "edge.jsonl"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    got = [obj for _, obj in iter_jsonl(p)]
    want = [json.loads(line) for line in lines]
    assert repr(got) == repr(want)  # repr: NaN != NaN, and 1 == 1.0 would hide an int read as a float
