"""dvc.yaml deps by construction (distillery.testing.stage_deps): every stage lists exactly the code it
imports and the params it reads, nothing from the test helpers, and dvc.lock was recorded for that code.

When one of these fails after a code or params change: `python -m distillery.testing.stage_deps --write`,
then `dvc repro` and commit dvc.yaml + dvc.lock."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from distillery.testing import stage_deps as sd

REPO = Path(__file__).resolve().parents[2]
DVC = str(Path(sys.executable).parent / "dvc")
FIX = "python -m distillery.testing.stage_deps --write"
STAGES = list(sd.load_stages(REPO / sd.DVC_YAML))


@pytest.fixture(scope="module")
def expected() -> dict[str, sd.Expected]:
    return sd.compute(REPO)


@pytest.fixture(scope="module")
def listed() -> dict[str, dict]:
    return sd.load_stages(REPO / sd.DVC_YAML)


def code_deps(stage: dict) -> list[str]:
    deps = [d for d in stage.get("deps") or [] if isinstance(d, str)]
    return [d for d in deps if d.startswith("scripts/") or d.endswith(".py")]


@pytest.mark.parametrize("stage", STAGES)
def test_code_deps_are_the_import_closure(stage, expected, listed):
    have, want = code_deps(listed[stage]), expected[stage].code
    missing, extra = sorted(set(want) - set(have)), sorted(set(have) - set(want))
    assert not missing and not extra, f"{stage}: missing {missing}, extra {extra}; run `{FIX}`"


def test_params_prompts_and_metrics_deps_in_sync(expected):
    problems = sd.check(REPO, expected=expected)
    assert not problems, "\n".join(problems[:40]) + f"\n({len(problems)} in all; run `{FIX}`)"


def test_no_stage_depends_on_test_code(expected, listed):
    bad = {n: [d for d in (s.get("deps") or []) + expected[n].code + expected[n].other
               if isinstance(d, str) and d.startswith(("src/distillery/testing", "tests/", "tests"))]
           for n, s in listed.items()}
    assert not {n: b for n, b in bad.items() if b}


def test_params_keys_exist_and_are_loaded_by_the_stage(expected):
    """DVC refuses a key params.yaml lacks, and a stage reading a section it did not load fails."""
    raw = yaml.safe_load((REPO / sd.PARAMS_YAML).read_text(encoding="utf-8"))
    commands = {n: [f for f in sd.closure(REPO / "src", [REPO / e.code[0]]) if f.parent.name == "commands"]
                for n, e in expected.items()}
    for name, exp in expected.items():
        loaded = sd.loaded_sections(REPO / sd.PARAMS_YAML, sd.declared_sections(commands[name]))
        for key in exp.params:
            assert "${" in key or sd._get(raw, key)[0], f"{name}: {key} is not in params.yaml"
            assert key.split(".")[0] in loaded, f"{name}: reads {key} but does not load that section"


def test_teacher_keys_follow_routing(expected):
    """A stage depends on a teacher only when the params route it there: a paid teacher no stage uses
    (its price, its rate limits) reruns nothing; routing distill to it adds it to distill alone."""
    from distillery.core.params import load_params

    assert all("llm" not in e.params for e in expected.values())
    paid = {"provider": "openai", "base_url": "https://api.example.com/v1", "model": "m", "price_input_per_1m": 5.0}
    idle = load_params(REPO / sd.PARAMS_YAML, extra={"llm.teachers.paid-api": paid})
    routed = load_params(REPO / sd.PARAMS_YAML, extra={"llm.teachers.paid-api": paid,
                                                        "distill.teachers": {"paid-api": 1.0}})
    for name, reads in sd.READS.items():
        assert "paid-api" not in reads(idle).teachers, name
        assert ("paid-api" in reads(routed).teachers) == (name == "distill"), name
    assert sd.READS["score"](idle).teachers == set(idle.score.judge.teachers)


def test_lock_has_the_current_code_deps(expected):
    """Stale until the lead runs `dvc repro` and commits dvc.lock after a code change (expected then)."""
    from dvc_data.hashfile.hash import file_md5

    lock = yaml.safe_load((REPO / "dvc.lock").read_text(encoding="utf-8"))["stages"]
    stale: dict[str, list[str]] = {}
    for lock_name in [n for n in lock] + [n for n in expected if not any(k.split("@")[0] == n for k in lock)]:
        name = lock_name.split("@")[0]
        if name not in expected:
            continue
        md5 = {d["path"]: d.get("md5") for d in (lock.get(lock_name) or {}).get("deps", [])}
        files = expected[name].code
        bad = [f for f in files if md5.get(f) != file_md5(str(REPO / f))]
        if bad:
            stale[lock_name] = bad
    if stale:
        pytest.fail(f"dvc.lock is stale for {len(stale)} stage(s): {', '.join(sorted(stale))} (e.g. "
                    + "; ".join(f"{s}: {fs[0]}" for s, fs in sorted(stale.items())[:3])
                    + "); run `dvc repro` and commit dvc.lock", pytrace=False)


def test_closure_follows_every_import_form(tmp_path):
    src = tmp_path / "src"
    pkg = src / "distillery"
    files = {
        "__init__.py": "",
        "a/__init__.py": "from .b import x\n",
        "a/b.py": "x = 1\ndef f():\n    from ..c import d\n",
        "c/__init__.py": "",
        "c/d.py": "import importlib\nM = importlib.import_module('distillery.e')\n",
        "e.py": "from . import g\nARGS = ['python', '-m', 'distillery.h']\n",
        "g.py": "",
        "h.py": "import distillery.i.j\n",
        "i/__init__.py": "",
        "i/j.py": "",
        "unused.py": "import distillery.testing\n",
    }
    for rel, text in files.items():
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text(text)
    script = tmp_path / "run.py"
    script.write_text("from distillery.a import b\n")
    got = {f.relative_to(pkg).as_posix() for f in sd.closure(src, [script])}
    assert got == set(files) - {"unused.py"}


def test_write_fixes_a_drifted_file_and_keeps_the_rest(tmp_path, expected):
    drifted = tmp_path / "dvc.yaml"
    text = (REPO / sd.DVC_YAML).read_text(encoding="utf-8")
    data = text.replace("    - src/distillery/dedup/minhash.py\n", "", 1)  # first: prompt_dedup's
    data = data.replace("    - score.judge\n", "    - llm\n", 1)
    drifted.write_text(data, encoding="utf-8")
    problems = sd.check(REPO, drifted, expected)
    assert "prompt_dedup: missing dep src/distillery/dedup/minhash.py" in problems
    assert any(p.endswith("extra param llm") for p in problems)
    assert sd.write(REPO, drifted, expected)
    assert sd.check(REPO, drifted, expected) == []
    if not sd.check(REPO, expected=expected):  # the repo's file is in sync: --write reproduces it exactly
        assert drifted.read_text(encoding="utf-8") == text
    assert drifted.read_text(encoding="utf-8").startswith("# distillery pipeline.")


LOCK_NOW = """
from dvc.repo import Repo
with Repo('.') as r, r.lock:
    stages = list(r.index.stages)
    for s in stages:
        s.save(allow_missing=True, run_cache=False)
    stages[0].dvcfile.dump_stages(stages, update_pipeline=False)
"""


def _changed_code(clone: Path, env: dict) -> dict[str, set[str]]:
    """stage -> code deps `dvc status` reports changed (other changes: missing data, not our concern)."""
    out = subprocess.run([DVC, "status", "--json"], cwd=clone, env=env, check=True, capture_output=True,
                         text=True).stdout
    got: dict[str, set[str]] = {}
    for stage, entries in json.loads(out or "{}").items():
        for e in entries:
            if isinstance(e, dict):
                got.setdefault(stage, set()).update(
                    p for p in e.get("changed deps", {}) if p.startswith(("src/", "scripts/")))
    return {s: ps for s, ps in got.items() if ps}


@pytest.mark.slow
def test_dvc_status_reruns_exactly_the_importers(tmp_path, expected):
    """In a clone with a freshly recorded lock: touching core/io.py changes the deps of every stage that
    imports it and nothing else; touching the test server changes no stage."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    for d in ("src", "scripts", "prompts"):
        if (REPO / d).is_dir():
            shutil.copytree(REPO / d, clone / d, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    for f in (sd.DVC_YAML, sd.PARAMS_YAML):
        shutil.copy(REPO / f, clone / f)
    env = dict(os.environ, DVC_NO_ANALYTICS="1")
    subprocess.run([sys.executable, "-c", LOCK_NOW], cwd=clone, env=env, check=True, capture_output=True)

    io_py = clone / "src/distillery/core/io.py"
    original = io_py.read_bytes()
    io_py.write_bytes(original + b"\n# touched\n")
    changed = _changed_code(clone, env)
    importers = {n for n, e in expected.items() if "src/distillery/core/io.py" in e.code}
    assert importers, "nothing imports core/io.py?"
    assert {s.split("@")[0] for s in changed} == importers
    assert all(ps == {"src/distillery/core/io.py"} for ps in changed.values()), changed

    io_py.write_bytes(original)
    server = clone / "src/distillery/testing/testserver.py"
    server.write_bytes(server.read_bytes() + b"\n# touched\n")
    assert _changed_code(clone, env) == {}
