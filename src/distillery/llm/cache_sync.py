"""Share the LLM response cache (SQLite) through the project's DVC remote.

The cache lives outside DVC outs (DVC deletes outs before a rerun), so `dvc push` does not carry
it. This module stores it as one object at `<remote url>/<remote.llm_cache_key>` on the same
remote (local dir, S3, SSH, ... whatever DVC's filesystem supports) and *merges* rather than
overwrites: push uploads local ∪ remote rows, pull adds the remote's rows to the local cache
(`INSERT OR IGNORE` per table), so two machines never lose each other's paid responses.

    python -m distillery.llm.cache_sync push|pull [--remote NAME] [--params params.yaml]
"""

from __future__ import annotations

import logging
import os
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from ..core.errors import DistilleryError, ParamsError

log = logging.getLogger(__name__)

DEFAULT_CACHE_PATH = Path("data/llm_cache/responses.sqlite")


class RemoteError(DistilleryError):
    """The remote is missing, misconfigured or unreachable."""


@dataclass
class Target:
    name: str
    url: str
    fs: Any
    path: str


def remote_target(repo_root: str | Path, name: str, key: str) -> Target:
    """The DVC remote (by name, or the default one) and the object path of the cache on it."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        repo = Repo(str(repo_root))
    except DvcException as e:
        raise RemoteError(f"{repo_root}: not a DVC repository ({str(e).splitlines()[0]})") from None
    try:
        remote = repo.cloud.get_remote(name or None, command="cache_sync")
    except DvcException as e:
        raise RemoteError(f"DVC remote: {str(e).splitlines()[0]}") from None
    finally:
        repo.close()
    url = repo.config["remote"].get(remote.name, {}).get("url", remote.path)
    return Target(remote.name, str(url), remote.fs, remote.fs.join(remote.path, *key.split("/")))


def _fail(t: Target, action: str, e: Exception) -> RemoteError:
    detail = (str(e).splitlines() or [type(e).__name__])[0][:200] or type(e).__name__
    return RemoteError(f"remote {t.name!r} ({t.url}): {action} failed: {type(e).__name__}: {detail}")


def _exists(t: Target) -> bool:
    try:
        return bool(t.fs.exists(t.path))
    except Exception as e:  # any backend's connection error (OSError, botocore, asyncssh) -> one line
        raise _fail(t, "connect", e) from None


def snapshot(db: Path, dest: Path) -> None:
    """A consistent copy of a live SQLite file (backup API; safe while the engine writes)."""
    src = sqlite3.connect(db)
    try:
        out = sqlite3.connect(dest)
        try:
            src.backup(out)
        finally:
            out.close()
    finally:
        src.close()


# per-machine state that never travels: in-flight reservations name this host's processes
LOCAL_TABLES = ("reservations",)


def merge_sqlite(src: Path, dst: Path) -> int:
    """Insert every row of src's tables into dst (creating missing tables); returns rows added.
    In-flight reservations are not copied (another machine would wait on this one's calls)."""
    con = sqlite3.connect(dst)
    try:
        con.execute("ATTACH DATABASE ? AS other", (str(src),))
        before = con.total_changes
        tables = con.execute("SELECT name, sql FROM other.sqlite_master WHERE type='table' "
                             "AND name NOT LIKE 'sqlite_%' ORDER BY name").fetchall()
        with con:
            for name, sql in tables:
                if name in LOCAL_TABLES:
                    continue
                q = '"' + name.replace('"', '""') + '"'
                have = con.execute("SELECT 1 FROM main.sqlite_master WHERE type='table' AND name=?", (name,)).fetchone()
                if not have:
                    con.execute(sql)
                cols = [r[1] for r in con.execute(f"PRAGMA other.table_info({q})")]
                mine = {r[1] for r in con.execute(f"PRAGMA main.table_info({q})")}
                shared = ", ".join('"' + c.replace('"', '""') + '"' for c in cols if c in mine)
                con.execute(f"INSERT OR IGNORE INTO main.{q} ({shared}) SELECT {shared} FROM other.{q}")
        added = con.total_changes - before
        con.execute("DETACH DATABASE other")
        return added
    except sqlite3.DatabaseError as e:
        raise DistilleryError(f"{src}: not a usable SQLite LLM cache ({e})") from None
    finally:
        con.close()


def drop_local_state(path: Path) -> None:
    """Empty the per-machine tables of a pulled copy (the pushing machine's in-flight reservations)."""
    con = sqlite3.connect(path)
    try:
        with con:
            for name in LOCAL_TABLES:
                if con.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone():
                    con.execute(f'DELETE FROM "{name}"')
    finally:
        con.close()


def check_sqlite(path: Path) -> None:
    try:
        con = sqlite3.connect(path)
        try:
            con.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            con.close()
    except sqlite3.DatabaseError as e:
        raise DistilleryError(f"{path}: not a usable SQLite LLM cache ({e})") from None


def push(cache_path: Path, t: Target) -> str:
    """Upload local ∪ remote cache rows to the remote."""
    if not cache_path.exists():
        return f"nothing to push: no LLM cache at {cache_path}"
    with tempfile.TemporaryDirectory(prefix="distillery-cache-sync-") as tmp:
        snap = Path(tmp) / "local.sqlite"
        snapshot(cache_path, snap)
        added = 0
        if _exists(t):
            theirs = Path(tmp) / "remote.sqlite"
            try:
                t.fs.get_file(t.path, str(theirs))
            except Exception as e:
                raise _fail(t, "download", e) from None
            added = merge_sqlite(theirs, snap)
        try:
            t.fs.makedirs(t.fs.parent(t.path), exist_ok=True)
            t.fs.put_file(str(snap), t.path)
        except Exception as e:
            raise _fail(t, "upload", e) from None
    return f"pushed LLM cache {cache_path} to {t.name} ({t.url}); merged {added} rows from the remote copy"


def pull(cache_path: Path, t: Target) -> str:
    """Add the remote cache's rows to the local cache (or create it)."""
    if not _exists(t):
        return f"nothing to pull: remote {t.name!r} has no LLM cache yet"
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{cache_path.name}.", suffix=".tmp", dir=cache_path.parent)
    os.close(fd)
    try:
        try:
            t.fs.get_file(t.path, tmp)
        except Exception as e:
            raise _fail(t, "download", e) from None
        if cache_path.exists():
            added = merge_sqlite(Path(tmp), cache_path)
            return f"pulled LLM cache from {t.name}: {added} new rows merged into {cache_path}"
        check_sqlite(Path(tmp))  # never replace anything with a file that is not SQLite
        drop_local_state(Path(tmp))
        os.replace(tmp, cache_path)
        return f"pulled LLM cache from {t.name} into {cache_path}"
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _settings(params_path: str | None, overrides: tuple[str, ...]) -> tuple[Path, Any]:
    from ..core.params import load_params

    params = load_params(params_path, overrides)
    cache = getattr(params.llm, "cache_path", None) or DEFAULT_CACHE_PATH
    return Path(cache), params.remote


@click.command()
@click.argument("action", type=click.Choice(["push", "pull"]))
@click.option("--remote", "remote_name", default=None, help="DVC remote name (default: remote.name, "
              "else the DVC default remote).")
@click.option("--repo", "repo_root", type=click.Path(file_okay=False), default=".", show_default=True,
              help="DVC repository root.")
@click.option("--params", "params_path", type=click.Path(dir_okay=False), default=None,
              help="Params file (llm.cache_path, remote.*; default params.yaml if present).")
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE", help="Override a params value.")
def main(action, remote_name, repo_root, params_path, overrides):
    """Push or pull the LLM response cache through the DVC remote (merging, never overwriting)."""
    from ..core.stage import one_line_errors

    @one_line_errors
    def _run():
        for noisy in ("aiobotocore", "botocore", "asyncssh", "s3fs", "sshfs", "dvc"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        cache, rp = _settings(params_path, overrides)
        if not rp.sync_llm_cache:
            click.echo("LLM cache sync is off (remote.sync_llm_cache=false)")
            return
        if not rp.llm_cache_key.strip("/"):
            raise ParamsError("remote.llm_cache_key: must name an object path, e.g. distillery/llm_cache/responses.sqlite")
        if not cache.is_absolute():
            cache = Path(repo_root) / cache
        t = remote_target(repo_root, remote_name or rp.name, rp.llm_cache_key.strip("/"))
        click.echo(push(cache, t) if action == "push" else pull(cache, t))

    _run()


if __name__ == "__main__":
    main()
