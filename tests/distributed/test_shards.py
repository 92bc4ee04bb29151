"""Byte-range reading: any range size gives every line exactly once, in order (local and S3)."""

from __future__ import annotations

import gzip

import pytest

from distillery.distributed.shards import iter_chunk_lines, list_inputs, plan_chunks
from distillery.core.errors import InputError

@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 10_000])
def test_every_line_once_in_order_whatever_the_range_size(tmp_path, chunk):
    raw = b'{"a": 1}\n\n{"b": "\xc3\xa9t\xc3\xa9"}\r\n' + b"x" * 50 + b"\n\n\nlast-without-newline"
    f = tmp_path / "records.jsonl"
    f.write_bytes(raw)
    g = tmp_path / "more.jsonl.gz"
    g.write_bytes(gzip.compress(b"g1\ng2\n"))
    files = list_inputs([str(tmp_path), str(g)])
    assert files == [str(f), str(g)]
    chunks = plan_chunks(files, chunk)
    got = [ln for _, lines in iter_chunk_lines(chunks) for ln in lines]
    with open(f, "rb") as fh:
        want = list(fh)
    assert got == want + [b"g1\n", b"g2\n"]
    assert sum(c.gz for c in chunks) == 1

def test_missing_input_is_one_line(tmp_path):
    with pytest.raises(InputError, match="input not found"):
        list_inputs([str(tmp_path / "nope")])

def test_s3_prefix_lists_and_reads_records(tmp_path, monkeypatch):
    moto = pytest.importorskip("moto.server")
    import boto3

    from distillery.testing.testserver import free_port

    port = free_port()
    srv = moto.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    srv.start()
    try:
        url = f"http://127.0.0.1:{port}"
        for k, v in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
                     "AWS_ENDPOINT_URL": url, "AWS_EC2_METADATA_DISABLED": "true"}.items():
            monkeypatch.setenv(k, v)
        s3 = boto3.client("s3", endpoint_url=url)
        s3.create_bucket(Bucket="data")
        s3.put_object(Bucket="data", Key="score/b/records.jsonl", Body=b"3\n4\n")
        s3.put_object(Bucket="data", Key="score/a/records.jsonl", Body=b"1\n2")
        s3.put_object(Bucket="data", Key="score/a/other.txt", Body=b"no\n")
        files = list_inputs(["s3://data/score"])
        assert files == ["s3://data/score/a/records.jsonl", "s3://data/score/b/records.jsonl"]
        got = [ln for _, lines in iter_chunk_lines(plan_chunks(files, 1)) for ln in lines]
        assert got == [b"1\n", b"2", b"3\n", b"4\n"]
    finally:
        srv.stop()
