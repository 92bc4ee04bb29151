"""The LLM layer type-checks, the engine is typed (no `Any` where it is passed or built), and its
modules import each other without a cycle (items is a leaf)."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path
from typing import Any, get_type_hints

import pytest

REPO = Path(__file__).resolve().parents[2]
LLM = REPO / "src" / "distillery" / "llm"


def _targets() -> list[str]:
    out = ["src/distillery/llm", "src/distillery/distributed/vllm_ray.py"]
    step = REPO / "src" / "distillery" / "generation" / "step.py"
    if step.exists():
        out.append(str(step.relative_to(REPO)))
    return out


@pytest.mark.timeout(600)
def test_mypy_passes_on_the_llm_layer(tmp_path):
    r = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "mypy"), *_targets()],
                       cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "Success" in r.stdout


def test_engine_public_signatures_have_no_any():
    from distillery.llm.engine import Engine

    for name, fn in inspect.getmembers(Engine, inspect.isfunction):
        if name.startswith("_"):
            continue
        hints = get_type_hints(fn)
        for arg, hint in hints.items():
            if arg != "return":
                assert hint is not Any, f"Engine.{name}({arg}: Any)"
    assert get_type_hints(Engine.run)["return"] == list[__import__("distillery.llm", fromlist=["x"]).ChatResult]


def _runtime_imports(path: Path) -> set[str]:
    """Sibling modules of the llm package `path` imports when it runs (not under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip or not isinstance(node, ast.ImportFrom) or node.level != 1:
            continue
        if node.module:
            out.add(node.module.split(".")[0])
        else:
            out.update(a.name for a in node.names)
    return out


def test_items_is_a_leaf_and_the_llm_modules_import_without_a_cycle():
    graph = {p.stem: _runtime_imports(p) & {q.stem for q in LLM.glob("*.py")} for p in LLM.glob("*.py")}
    assert graph["items"] == set(), graph["items"]
    for m in ("engine", "batch", "estimate", "online", "local", "backend"):
        assert m in graph
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph.get(m, ())):
            assert state.get(n) != 1, "import cycle: " + " -> ".join(path + [n])
            if n not in state:
                visit(n, path + [n])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert "engine" not in graph["batch"] | graph["estimate"] | graph["online"] | graph["local"]


def test_backends_use_no_private_engine_members():
    for p in LLM.glob("*.py"):
        if p.name == "engine.py":
            continue
        src = p.read_text()
        for private in ("._loop_run", "._client(", "._item(", "._stat(", "._limiters"):
            assert private not in src, f"{p.name} uses {private}"
    assert "._item(" not in (REPO / "src" / "distillery" / "distributed" / "vllm_ray.py").read_text()
