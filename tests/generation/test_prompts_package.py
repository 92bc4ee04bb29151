"""Default prompts are package data: stages render them from any folder, a project's prompts/ folder
overrides single files, and the sdist and wheel carry them."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from importlib.resources import files
from pathlib import Path

import pytest

from distillery.core.errors import ParamsError
from distillery.generation.templates import load_template

REPO = Path(__file__).resolve().parents[2]
PACKAGE = files("distillery") / "prompts"
SHIPPED = sorted(p.relative_to(REPO / "src" / "distillery" / "prompts").as_posix()
                 for p in (REPO / "src" / "distillery" / "prompts").rglob("*") if p.is_file())


def _template_values(node) -> list[str]:
    if isinstance(node, dict):
        return [v for x in node.values() for v in _template_values(x)]
    if isinstance(node, list):
        return [v for x in node for v in _template_values(x)]
    return [node] if isinstance(node, str) and node.startswith("prompts/") else []


def referenced() -> list[str]:
    """Every `prompts/...` template the default params point at."""
    from distillery.core.params import root_model

    return sorted(set(_template_values(root_model().model_validate({}).model_dump(mode="json"))))


@pytest.fixture()
def elsewhere(tmp_path, monkeypatch):
    """An unrelated working folder, not a DVC stage."""
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_every_referenced_template_is_package_data_and_loads_from_any_folder(elsewhere):
    names = referenced()
    assert {n.split("/")[1] for n in names} >= {"distill", "judge", "multiturn", "scenarios", "completion"}
    for name in names:
        assert (PACKAGE / name.removeprefix("prompts/")).is_file(), name
        assert load_template(name).ref["template"] == name
    assert load_template("prompts/distill/user.j2").render(instruction="Name a fruit.", bucket="x") == "Name a fruit."
    assert not (elsewhere / "prompts").exists()


def test_project_prompt_overrides_only_that_file(elsewhere):
    default_user, default_sys = load_template("prompts/distill/user.j2"), load_template("prompts/distill/system.j2")
    (elsewhere / "prompts" / "distill").mkdir(parents=True)
    (elsewhere / "prompts" / "distill" / "user.j2").write_text("Q ({{ bucket }}): {{ instruction }}")
    user, system = load_template("prompts/distill/user.j2"), load_template("prompts/distill/system.j2")
    assert user.render(instruction="Hi", bucket="chat") == "Q (chat): Hi" and user.sha != default_user.sha
    assert system.ref == default_sys.ref                      # not overridden: the package default
    # a changed override is picked up (no stale cache) and a strict variable error names the template
    (elsewhere / "prompts" / "distill" / "user.j2").write_text("{{ nope }}")
    with pytest.raises(ParamsError, match=r"^template prompts/distill/user.j2: 'nope' is undefined$"):
        load_template("prompts/distill/user.j2").render(instruction="Hi", bucket="chat")


def test_dvc_root_decides_the_project_folder(elsewhere, tmp_path_factory, monkeypatch):
    root = tmp_path_factory.mktemp("project")
    (root / "prompts" / "judge").mkdir(parents=True)
    (root / "prompts" / "judge" / "system.j2").write_text("Project judge.")
    (elsewhere / "prompts" / "judge").mkdir(parents=True)
    (elsewhere / "prompts" / "judge" / "system.j2").write_text("Cwd judge.")
    monkeypatch.setenv("DVC_ROOT", str(root))
    assert load_template("prompts/judge/system.j2").render() == "Project judge."
    monkeypatch.delenv("DVC_ROOT")
    assert load_template("prompts/judge/system.j2").render() == "Cwd judge."


def test_other_paths_are_files_and_missing_ones_name_the_key(elsewhere):
    (elsewhere / "mine.j2").write_text("Mine: {{ instruction }}")
    assert load_template("mine.j2").render(instruction="x") == "Mine: x"
    assert load_template(elsewhere / "mine.j2").render(instruction="y") == "Mine: y"
    with pytest.raises(ParamsError, match=r"^distill\.template: template not found: prompts/distill/nope\.j2 \(not in "):
        load_template("prompts/distill/nope.j2", "distill.template")
    with pytest.raises(ParamsError, match=r"^distill\.template: template not found: other\.j2$"):
        load_template("other.j2", "distill.template")


def _build(tmp: Path) -> tuple[Path, Path]:
    """sdist from a clean copy of the sources, then the wheel from that sdist (so both are checked)."""
    src = tmp / "src-copy"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        (src / name).write_bytes((REPO / name).read_bytes())
    for path in (REPO / "src").rglob("*"):
        rel = path.relative_to(REPO)
        if path.is_file() and "__pycache__" not in rel.parts and not any(p.endswith(".egg-info") for p in rel.parts):
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            (src / rel).write_bytes(path.read_bytes())
    out = tmp / "dist"
    hook = "from setuptools import build_meta as b; import sys; print(getattr(b, sys.argv[1])(sys.argv[2]))"
    r = subprocess.run([sys.executable, "-c", hook, "build_sdist", str(out)], cwd=src, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    sdist = out / r.stdout.strip().splitlines()[-1]
    with tarfile.open(sdist) as tar:
        tar.extractall(tmp / "unpacked", filter="data")
    unpacked = next((tmp / "unpacked").iterdir())
    r = subprocess.run([sys.executable, "-c", hook, "build_wheel", str(out)], cwd=unpacked, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    return sdist, out / r.stdout.strip().splitlines()[-1]


def test_sdist_and_wheel_ship_the_prompts(tmp_path):
    sdist, wheel = _build(tmp_path)
    with tarfile.open(sdist) as tar:
        in_sdist = {n.split("/src/distillery/prompts/", 1)[1] for n in tar.getnames() if "/src/distillery/prompts/" in n}
    with zipfile.ZipFile(wheel) as whl:
        in_wheel = {n.removeprefix("distillery/prompts/") for n in whl.namelist() if n.startswith("distillery/prompts/")}
    assert set(SHIPPED) <= in_sdist and set(SHIPPED) == in_wheel
    # the wheel imported as a zip (no folder on disk): templates still load, from an unrelated folder
    code = ("import distillery, sys; assert distillery.__file__.startswith(sys.argv[1]), distillery.__file__;"
            "from distillery.generation.templates import load_template as t;"
            "print(t('prompts/judge/system.j2').sha, t('prompts/distill/user.j2').render(instruction='ok', bucket='b'))")
    env = {**os.environ, "PYTHONPATH": str(wheel)}
    env.pop("DVC_ROOT", None)
    r = subprocess.run([sys.executable, "-c", code, str(wheel)], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == [load_template(REPO / "src/distillery/prompts/judge/system.j2").sha, "ok"]
