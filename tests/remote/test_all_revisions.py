"""The default remote is the same store for every revision, and a fresh clone can pull any of them.

`.dvc/config` ships `url = ../dvc-storage`, relative to `.dvc/`. For the workspace DVC resolves it against
the checkout, but for the other revisions of `dvc push -A` / `dvc fetch -A` it reads `.dvc/config` from the
commit's tree, which DVC roots at "/": `../dvc-storage` became `/dvc-storage`, outside the project, and a
fresh clone then found none of the old revisions' objects. `.dvc/config.local` is always read from the
checkout, for every revision, so `make remote-pin` (run by `make push` / `make pull`) copies the URL there.

Also: an output that is neither in git nor in the DVC cache (`cache: false` under a git-ignored folder,
like `reports/tracking.json`) is reported `deleted` by `dvc status` after every fresh clone and pull; a
cached output is pulled back and is clean.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))

from remote_helpers import REPO, VENV_BIN, digest, dvc, env, sh  # noqa: E402

ROOT_STORE = Path("/dvc-storage")   # where the relative URL landed for old revisions


def make(target: str, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """A target of the project Makefile run in `cwd` (a tiny project) with the project's venv."""
    cmd = ["make", "-s", "-f", str(REPO / "Makefile"), "-o", str(VENV_BIN.parent / ".installed"),
           f"VENV={VENV_BIN.parent}", *args, target]
    p = subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, f"make {target} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
    return p


def _listing(path: Path) -> set[str] | None:
    return {str(p) for p in path.rglob("*")} if path.exists() else None


@pytest.fixture()
def two_versions(dvc_repo) -> tuple[Path, dict, dict]:
    """dvc_repo (data v1 committed) plus a second commit with different data; returns (repo, v1, v2)."""
    v1 = digest(dvc_repo / "data" / "mix")
    (dvc_repo / "data" / "mix" / "production.jsonl").write_text('{"id": "v2", "kind": "sft"}\n', encoding="utf-8")
    (dvc_repo / "data" / "mix" / "added.txt").write_text("only in v2\n")
    dvc("add", "-q", "data/mix", cwd=dvc_repo)
    sh(["git", "add", "-A"], dvc_repo)
    sh(["git", "commit", "-q", "-m", "data v2"], dvc_repo)
    v2 = digest(dvc_repo / "data" / "mix")
    assert v1 != v2
    return dvc_repo, v1, v2


def _remote_paths(repo: Path) -> dict[str, str]:
    """{revision: path of the default remote DVC uses for it} over all commits (no data moved)."""
    from dvc.repo import Repo

    with Repo(str(repo)) as r:
        return {rev: r.cloud.get_remote().path for rev in r.brancher(all_commits=True)}


def test_the_shipped_relative_url_leaves_the_project_for_old_revisions_unless_pinned(two_versions):
    repo, _, _ = two_versions
    assert "url = ../dvc-storage" in (repo / ".dvc" / "config").read_text()
    before = _remote_paths(repo)
    assert before["workspace"] == str(repo / "dvc-storage")
    assert {p for rev, p in before.items() if rev != "workspace"} == {str(ROOT_STORE)}   # the bug, as DVC does it

    out = make("remote-pin", repo)
    assert "pinned DVC remote 'local'" in out.stdout
    assert (repo / ".dvc" / "config.local").read_text().split() == ["['remote", '"local"\']', "url", "=",
                                                                  "../dvc-storage"]
    after = _remote_paths(repo)
    assert len(after) == 3 and set(after.values()) == {str(repo / "dvc-storage")}


def test_push_all_revisions_then_a_fresh_clone_pulls_the_old_one(two_versions, tmp_path):
    repo, v1, v2 = two_versions
    outside = _listing(ROOT_STORE)
    make("push", repo, "ARGS=-A")                        # remote-pin, dvc push -A, LLM cache (none here)
    assert _listing(ROOT_STORE) == outside, f"dvc push -A wrote to {ROOT_STORE}"
    store = repo / "dvc-storage"
    assert store.is_dir()

    shutil.rmtree(repo / ".dvc" / "cache")
    clone = tmp_path / "clone"
    sh(["git", "clone", "-q", str(repo), str(clone)], tmp_path)
    dvc("remote", "modify", "--local", "local", "url", str(store), cwd=clone)   # docs/remote.md: a second checkout
    sh(["git", "checkout", "-q", "HEAD~1"], clone)
    dvc("pull", cwd=clone)
    assert digest(clone / "data" / "mix") == v1
    assert "up to date" in dvc("status", cwd=clone).stdout
    sh(["git", "checkout", "-q", "-"], clone)
    dvc("pull", cwd=clone)
    assert digest(clone / "data" / "mix") == v2
    make("pull", clone)                                  # keeps the clone's own config.local URL
    assert str(store) in (clone / ".dvc" / "config.local").read_text()
    assert _listing(ROOT_STORE) == outside


def test_pin_keeps_an_existing_local_url_and_follows_a_moved_project(two_versions, tmp_path):
    repo, _, _ = two_versions
    dvc("remote", "modify", "--local", "local", "url", "/srv/elsewhere", cwd=repo)
    assert make("remote-pin", repo).stdout == ""
    assert "/srv/elsewhere" in (repo / ".dvc" / "config.local").read_text()

    (repo / ".dvc" / "config.local").unlink()
    make("remote-pin", repo)
    moved = tmp_path / "moved"
    shutil.move(str(repo), str(moved))
    assert str(moved / "dvc-storage") in dvc("remote", "list", cwd=moved).stdout


def test_remote_pin_leaves_urls_and_absolute_paths_alone(dvc_repo):
    dvc("remote", "add", "-f", "-d", "s3", "s3://bucket/x", cwd=dvc_repo)
    assert make("remote-pin", dvc_repo).stdout == ""
    assert not (dvc_repo / ".dvc" / "config.local").exists()


STATUS_YAML = {
    "stages": {
        "uncached": {"cmd": "mkdir -p reports && echo a > reports/uncached.json",
                     "outs": [{"reports/uncached.json": {"cache": False}}]},
        "cached": {"cmd": "mkdir -p reports && echo b > reports/tracking.json", "outs": ["reports/tracking.json"]},
    }
}


def test_after_a_pull_only_an_output_neither_in_git_nor_cached_shows_as_deleted(dvc_repo, tmp_path):
    """Why reports/tracking.json must be a cached output: `cache: false` + git-ignored = `deleted` forever."""
    (dvc_repo / "dvc.yaml").write_text(yaml.safe_dump(STATUS_YAML, sort_keys=False))
    dvc("repro", "-q", cwd=dvc_repo)
    sh(["git", "add", "-A"], dvc_repo)
    sh(["git", "commit", "-q", "-m", "stages"], dvc_repo)
    assert sh(["git", "check-ignore", "-q", "reports/tracking.json"], dvc_repo, check=False).returncode == 0
    make("push", dvc_repo)

    clone = tmp_path / "clone"
    sh(["git", "clone", "-q", str(dvc_repo), str(clone)], tmp_path)
    dvc("remote", "modify", "--local", "local", "url", str(dvc_repo / "dvc-storage"), cwd=clone)
    dvc("pull", cwd=clone)
    status = dvc("status", "--json", cwd=clone).stdout
    assert '"reports/uncached.json": "deleted"' in status
    assert "tracking.json" not in status and (clone / "reports" / "tracking.json").read_text() == "b\n"


def _git_ignored_uncached_outs() -> list[str]:
    data = yaml.safe_load((REPO / "dvc.yaml").read_text())
    found = []
    for name, stage in (data.get("stages") or {}).items():
        if "foreach" in stage or "matrix" in stage:
            continue
        for key in ("outs", "metrics", "plots"):
            for out in stage.get(key) or []:
                if isinstance(out, dict):
                    (path, opts), = out.items()
                    if (opts or {}).get("cache") is False:
                        r = subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO)
                        if r.returncode == 0:
                            found.append(f"{name}: {path}")
    return found


def test_every_git_ignored_output_of_the_pipeline_is_cached():
    assert _git_ignored_uncached_outs() == []
