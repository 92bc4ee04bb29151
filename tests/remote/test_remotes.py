"""DVC remotes end to end: push, wipe the local cache, pull into a fresh clone, byte-identical.

The default local remote (.dvc/config), S3 (moto server) and SSH (real OpenSSH sshd) on 127.0.0.1;
the LLM response cache travels through the same remote with cache_sync.
"""

from __future__ import annotations

import configparser
import sys
from pathlib import Path

import pytest
sys.path.insert(0, str(Path(__file__).parent))

from remote_helpers import REPO, cache_rows, cache_sync, dvc, free_port, make_llm_cache, roundtrip, sh


def test_project_config_has_a_default_local_remote():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / ".dvc" / "config")
    default = cfg["core"]["remote"]
    url = cfg[f"'remote \"{default}\"'"]["url"]
    assert not url.startswith(("s3://", "ssh://", "http")), "the default remote must be a local directory"
    assert (REPO / ".dvc" / url).resolve() == (REPO / "dvc-storage").resolve()
    assert "/dvc-storage/" in (REPO / ".gitignore").read_text()


@pytest.mark.slow
def test_default_local_remote_works_out_of_the_box(dvc_repo, tmp_path):
    storage = dvc_repo / "dvc-storage"
    # a clone elsewhere on the machine points its (git-ignored) local remote at the original storage
    clone = roundtrip(dvc_repo, tmp_path, local_cfg=[["remote", "modify", "--local", "local", "url", str(storage)]])
    assert (storage / "files" / "md5").is_dir()
    assert (clone / "data" / "mix" / "production.jsonl").read_text(encoding="utf-8").count("\n") == 2000


def test_llm_cache_travels_through_the_default_remote_and_merges(dvc_repo, tmp_path):
    cache = dvc_repo / "data" / "llm_cache" / "responses.sqlite"
    make_llm_cache(cache, [("k1", "paid answer 1"), ("k2", "paid answer 2")])
    out = cache_sync("push", cwd=dvc_repo)
    assert "pushed LLM cache" in out.stdout
    # a second machine with its own rows pulls: it gains the remote rows and keeps its own
    other = tmp_path / "other"
    sh(["git", "clone", "-q", str(dvc_repo), str(other)], tmp_path)
    dvc("remote", "modify", "--local", "local", "url", str(dvc_repo / "dvc-storage"), cwd=other)
    mine = other / "data" / "llm_cache" / "responses.sqlite"
    make_llm_cache(mine, [("k3", "other machine's answer")])
    assert "2 new rows merged" in cache_sync("pull", cwd=other).stdout
    assert cache_rows(mine) == [("k1", "paid answer 1"), ("k2", "paid answer 2"), ("k3", "other machine's answer")]
    # its push merges instead of overwriting: the first machine then pulls k3 without losing anything
    cache_sync("push", cwd=other)
    cache_sync("pull", cwd=dvc_repo)
    assert [k for k, _ in cache_rows(cache)] == ["k1", "k2", "k3"]


def test_cache_sync_without_a_cache_or_remote_object_says_so(dvc_repo):
    assert "nothing to pull" in cache_sync("pull", cwd=dvc_repo).stdout
    assert "nothing to push" in cache_sync("push", cwd=dvc_repo).stdout


@pytest.mark.slow
def test_s3_remote_roundtrip_with_llm_cache(dvc_repo, tmp_path, moto_s3):
    endpoint, creds = moto_s3
    dvc("remote", "add", "-d", "s3", "s3://dvc-remote/store", cwd=dvc_repo)
    dvc("remote", "modify", "s3", "endpointurl", endpoint, cwd=dvc_repo)
    sh(["git", "commit", "-q", "-am", "s3 remote"], dvc_repo)
    make_llm_cache(dvc_repo / "data" / "llm_cache" / "responses.sqlite", [("k", "v")])
    assert "pushed LLM cache" in cache_sync("push", cwd=dvc_repo, **creds).stdout
    clone = roundtrip(dvc_repo, tmp_path, **creds)
    assert "pulled LLM cache" in cache_sync("pull", cwd=clone, **creds).stdout
    assert cache_rows(clone / "data" / "llm_cache" / "responses.sqlite") == [("k", "v")]


@pytest.mark.slow
def test_ssh_remote_roundtrip_with_llm_cache(dvc_repo, tmp_path, sshd):
    port, user, key = sshd
    store = tmp_path / "ssh-store"
    dvc("remote", "add", "-d", "ssh", f"ssh://{user}@127.0.0.1:{port}{store}", cwd=dvc_repo)
    dvc("remote", "modify", "--local", "ssh", "keyfile", str(key), cwd=dvc_repo)
    sh(["git", "commit", "-q", "-am", "ssh remote"], dvc_repo)
    make_llm_cache(dvc_repo / "data" / "llm_cache" / "responses.sqlite", [("k", "v")])
    assert "pushed LLM cache" in cache_sync("push", cwd=dvc_repo).stdout
    clone = roundtrip(dvc_repo, tmp_path, local_cfg=[["remote", "modify", "--local", "ssh", "keyfile", str(key)]])
    assert (store / "files" / "md5").is_dir()
    cache_sync("pull", cwd=clone)
    assert cache_rows(clone / "data" / "llm_cache" / "responses.sqlite") == [("k", "v")]


def _assert_one_line(p, *needles: str):
    err = p.stderr.strip()
    assert p.returncode != 0
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    for n in needles:
        assert n in err, err


def test_refused_s3_connection_is_one_clear_line(dvc_repo):
    port = free_port()  # nothing listens there
    dvc("remote", "add", "-d", "s3", "s3://dvc-remote/store", cwd=dvc_repo)
    dvc("remote", "modify", "s3", "endpointurl", f"http://127.0.0.1:{port}", cwd=dvc_repo)
    make_llm_cache(dvc_repo / "data" / "llm_cache" / "responses.sqlite", [("k", "v")])
    creds = {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y", "AWS_MAX_ATTEMPTS": "1"}
    _assert_one_line(cache_sync("push", cwd=dvc_repo, check=False, **creds),
                     "error: remote 's3' (s3://dvc-remote/store): connect failed", f"127.0.0.1:{port}")
    p = dvc("push", cwd=dvc_repo, check=False, **creds)
    assert p.returncode != 0 and "Traceback" not in p.stderr
    assert "ERROR" in p.stderr and f"127.0.0.1:{port}" in p.stderr


def test_refused_ssh_connection_is_one_clear_line(dvc_repo, tmp_path):
    port = free_port()
    dvc("remote", "add", "-d", "ssh", f"ssh://nobody@127.0.0.1:{port}{tmp_path}/store", cwd=dvc_repo)
    make_llm_cache(dvc_repo / "data" / "llm_cache" / "responses.sqlite", [("k", "v")])
    _assert_one_line(cache_sync("pull", cwd=dvc_repo, check=False), "error: remote 'ssh'", "connect failed")


def test_unknown_remote_name_is_one_clear_line(dvc_repo):
    _assert_one_line(cache_sync("push", "--remote", "nope", cwd=dvc_repo, check=False), "error: DVC remote:", "nope")
