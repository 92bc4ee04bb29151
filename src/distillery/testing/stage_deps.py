"""dvc.yaml deps by construction: each stage depends on exactly the code it runs and the params it reads.

    python -m distillery.testing.stage_deps --check   # print what dvc.yaml gets wrong; exit 1 if anything
    python -m distillery.testing.stage_deps --write   # rewrite the managed entries in place (comments kept)

Why: a hand-kept dep list drifts. `dedup` listed a folder but ran `distributed` and `core`; editing the
test server reran six paid LLM stages; a teacher's price in `llm` reran every LLM stage. Here:

- Code: the transitive closure of `distillery` modules the stage's script imports, found with `ast`
  (module-level and function-level imports, relative imports, `importlib.import_module("distillery.x")`
  literals, `[..., "-m", "distillery.x"]` subprocess argv literals), plus the params-section modules the
  stage's params loading runs (`core/params.py` imports them by string). Listed file by file, so an edit
  to a module the stage never imports does not rerun it. Importing a module runs its package
  `__init__.py` files, so those are listed too.
- Params: the keys each stage reads, key by key (`READS` below, written by reading the code). A key the
  shipped params.yaml does not set falls back to its nearest ancestor that it does set (DVC refuses a
  missing key, and adding the key later changes that ancestor). Teachers: `llm.teachers.<name>` only for
  the teachers the shipped params route the stage to; after changing routing (distill.teachers,
  score.judge.teachers, synthesize.*.teacher, train_eval.judge.teacher, ...) run `--write` again
  (tests/track/test_stage_deps.py fails until you do). The `tracking` section is left out except for
  `report`: it only decides where the MLflow copy goes, never a DVC output.
- Prompts: the template params a stage renders. A value `prompts/<sub>/<file>.j2` names a template that is
  looked up in the project's `prompts/` (override) and then in the package (`src/distillery/prompts`), so
  the stage depends on `src/distillery/prompts/<sub>` and, when it exists at `--write` time, on the project
  folder `prompts/<sub>` (creating an override folder later needs `--write`; the test catches it). Any
  other value is a file path and is listed as is.
- Metrics readers (card, costs, report): the metrics files of the other stages that their globs read,
  taken from those stages' outs, instead of the whole `metrics/` folder (which overlaps their outputs).

Everything else in a stage's deps (data inputs, the model folder, eval files) is kept as written.
This module is a dev tool: no stage imports it (the tests check that).
"""

from __future__ import annotations

import argparse
import ast
import functools
import inspect
import io
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import yaml

PKG = "distillery"
DVC_YAML = "dvc.yaml"
PARAMS_YAML = "params.yaml"
ALWAYS_LOADED = ("project", "tracking")

# Keys the LLM engine reads for a stage (llm/engine.py, budget, estimate); {stage} = the engine's stage name.
LLM_KEYS = ("llm.cache_path", "llm.max_usd", "llm.stage_max_usd.{stage}", "llm.max_parse_retries",
            "llm.pilot_min_samples", "llm.progress")
# engine: keys of distributed/__init__.make_engine + generate_ray (LLM stages) and run_dedup + dedup_ray.
_ENGINE = ("engine.engine", "engine.address", "engine.num_cpus", "engine.runtime_env", "engine.object_store_mb",
           "engine.stages.{stage}")
GEN_ENGINE_KEYS = _ENGINE + ("engine.concurrency",)
DEDUP_ENGINE_KEYS = _ENGINE + ("engine.chunk_mb", "engine.spill_dir", "engine.max_driver_edges")
JUDGE_TEMPLATES = ("score.judge.system_template", "score.judge.template", "score.judge.pairwise_template")
# Non-Python files a stage's code reads from the package (report runs `dvc plots show` with these).
EXTRA_DEPS: dict[str, tuple[str, ...]] = {"report": ("src/distillery/track/plot_templates",)}


# -- imports ---------------------------------------------------------------------------------------------

def module_file(src: Path, name: str) -> Path | None:
    """The file of module `name` (`distillery.a.b`) under `src`, or None when it is no distillery module."""
    parts = name.split(".")
    if parts[0] != PKG or not all(parts):
        return None
    base = src.joinpath(*parts)
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    f = base.with_suffix(".py")
    return f if len(parts) > 1 and f.is_file() else None


def module_name(src: Path, f: Path) -> str:
    parts = list(f.relative_to(src).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _literal_module(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) \
        and node.value.split(".")[0] == PKG else None


def imported_names(tree: ast.AST, name: str, is_pkg: bool) -> set[str]:
    """Every dotted name the module may import (non-distillery names are dropped later)."""
    out: set[str] = set()
    package = name.split(".") if is_pkg else name.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                up = package[:len(package) - node.level + 1] if node.level <= len(package) else []
                base = ".".join(up + (node.module.split(".") if node.module else []))
            else:
                base = node.module or ""
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names if a.name != "*")
        elif isinstance(node, ast.Call) and node.args:
            fn = node.func
            called = fn.attr if isinstance(fn, ast.Attribute) else fn.id if isinstance(fn, ast.Name) else ""
            if called in ("import_module", "__import__") and (lit := _literal_module(node.args[0])):
                out.add(lit.split(":")[0])
        elif isinstance(node, (ast.List, ast.Tuple)):  # subprocess argv: [python, "-m", "distillery.x"]
            for a, b in zip(node.elts, node.elts[1:]):
                if isinstance(a, ast.Constant) and a.value == "-m" and (lit := _literal_module(b)):
                    out.add(lit)
    return out


@functools.lru_cache(maxsize=1024)
def _file_imports(path: str, mtime_ns: int, name: str) -> frozenset[str]:
    """imported_names of one file, parsed once per version (mtime is part of the key)."""
    tree = ast.parse(Path(path).read_text(encoding="utf-8"), path)
    return frozenset(imported_names(tree, name, Path(path).name == "__init__.py"))


def closure(src: Path, entries: Iterable[Path], modules: Iterable[str] = ()) -> set[Path]:
    """Files of every distillery module reachable from the entry files and module names (packages'
    `__init__.py` included: importing `a.b` runs `a/__init__.py` first)."""
    seen: set[Path] = set()
    todo = [Path(e) for e in entries]

    def add(name: str) -> None:
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            f = module_file(src, ".".join(parts[:i]))
            if f is not None and f not in seen:
                todo.append(f)

    for n in modules:
        add(n)
    while todo:
        f = todo.pop()
        if f in seen:
            continue
        seen.add(f)
        name = module_name(src, f) if f.is_relative_to(src) else "__main__"
        for n in _file_imports(str(f), f.stat().st_mtime_ns, name):
            add(n)
    return {f for f in seen if f.is_relative_to(src)}


def declared_sections(files: Iterable[Path]) -> tuple[str, ...] | None:
    """The `sections=` of the `stage_run(...)` calls in the stage's command (None: not given = all)."""
    found: set[str] = set()
    calls = 0
    for f in files:
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == "stage_run":
                calls += 1
                kw = {k.arg: k.value for k in node.keywords}
                if "sections" not in kw:
                    return None
                try:
                    found.update(ast.literal_eval(kw["sections"]) or ())
                except ValueError:  # not a literal: assume every section, as load_params(sections=None)
                    return None
    return tuple(sorted(found)) if calls else None


# -- params a stage reads --------------------------------------------------------------------------------

@dataclass
class Reads:
    """What a stage reads from params: keys (dotted, may be absent from the file), the teachers it calls
    and the template params it renders."""

    keys: list[str]
    teachers: set[str] = field(default_factory=set)
    templates: list[str] = field(default_factory=list)


def _llm(stage: str, keys: list[str], teachers: Iterable[str], templates: list[str]) -> Reads:
    """An LLM stage (generation/common.run_llm_stage): engine keys always, since it builds an engine."""
    engine = [k.format(stage=stage) for k in LLM_KEYS + GEN_ENGINE_KEYS]
    return Reads(keys + engine, {t for t in teachers if t}, templates)


def _distill(P: Any) -> Reads:
    d = P.distill
    keys, tpls = ["distill", "project"], ["distill.template", "distill.system_template"]
    teachers = {*d.teachers, *d.failover, *(t for w in d.bucket_teachers.values() for t in w)}
    if d.pilot.size:  # generation/distill.run_pilot
        teachers |= set(d.pilot.teachers)
        if d.pilot.judge:
            keys.append("score.judge")
            teachers |= set(P.score.judge.teachers)
            tpls += JUDGE_TEMPLATES[:2]
    return _llm("distill", keys, teachers, tpls)


def _multiturn(P: Any) -> Reads:
    m, pre = P.synthesize.multiturn, "synthesize.multiturn."
    keys = ["synthesize.multiturn", "score.identity.system_prompt", "project.seed"]
    teachers = {m.teacher, m.user_teacher or m.teacher}
    tpls = [pre + "user_template", pre + "assistant_system_template"]
    if m.persona_judge:
        keys += ["score.judge.teachers", "score.judge.gen"]
        teachers.add(P.score.judge.teachers[0])
        tpls.append(pre + "persona_template")
    return _llm("multiturn", keys, teachers, tpls)


def _scenarios(P: Any) -> Reads:
    s, pre = P.synthesize.scenarios, "synthesize.scenarios."
    keys = ["synthesize.scenarios", "project.seed"]
    teachers = {s.teacher, s.idea_teacher or s.teacher, s.document_teacher or s.teacher}
    tpls = [pre + t for t in ("idea_template", "document_template", "response_system_template", "response_template")]
    tc = s.trait_check
    if tc.enabled:
        keys.append("score.judge.parse_retries")
        if not tc.teacher:
            keys.append("score.judge.teachers")
        teachers.add(tc.teacher or P.score.judge.teachers[0])
        tpls.append(pre + "trait_check.template")
    return _llm("scenarios", keys, teachers, tpls)


def _completion(P: Any) -> Reads:
    return _llm("completion", ["synthesize.completion", "project"], {P.synthesize.completion.teacher},
                ["synthesize.completion.template"])


def _prompt_dedup(P: Any) -> Reads:
    """dedup/prompts.py: the dedup library's decontamination settings and the generation settings its
    calls_saved / usd_saved_estimate metrics are priced with (prices only; it calls no teacher)."""
    d, c, j = P.distill, P.synthesize.completion, P.score.judge
    teachers = sorted({*d.teachers, c.teacher, *j.teachers[:1]})
    keys = ["prompt_dedup", "dedup.decontaminate", "project", "distill.teachers", "distill.responses_per_prompt",
            "distill.samples_per_teacher", "distill.gen.max_tokens", "synthesize.completion.teacher",
            "synthesize.completion.gen.max_tokens", "score.judge.teachers", "score.judge.gen.max_tokens"]
    return Reads(keys + [f"llm.teachers.{t}.price_{s}_per_1m" for t in teachers for s in ("input", "output")])


def _preferences(P: Any) -> Reads:
    keys, teachers, tpls = ["preferences", "score.identity", "project"], set(), []
    if P.preferences.mode in ("judge", "pairwise"):
        keys.append("score.judge")
        teachers, tpls = set(P.score.judge.teachers), list(JUDGE_TEMPLATES)
    return _llm("preferences", keys, teachers, tpls)


def _score(P: Any) -> Reads:
    return _llm("score", ["score", "project"], P.score.judge.teachers, list(JUDGE_TEMPLATES))


def _train_eval(P: Any) -> Reads:
    teacher = P.train_eval.judge.teacher  # train/judge.py: an Engine only when a judge teacher is set
    keys = ["train_eval", "project.seed", "project.max_reject_rate"]
    if not teacher:
        return Reads(keys)
    return Reads(keys + [k.format(stage="train_eval") for k in LLM_KEYS], {teacher})


def _judge_eval(P: Any) -> Reads:
    keys = ["judge_eval", "score.judge", "project.seed", "project.max_reject_rate"]
    return Reads(keys + [k.format(stage="judge_eval") for k in LLM_KEYS], set(P.judge_eval.judges),
                 list(JUDGE_TEMPLATES))


def _export(P: Any) -> Reads:
    """Key by key: the card's texts are the card stage's, and the worker count does not change the bundle
    (tests/export/test_bundle.py), so neither reruns the export."""
    return Reads([f"export.{k}" for k in type(P.export).model_fields if k not in ("card", "workers")] + ["project"])


# stage -> what it reads. `project.max_reject_rate` is the gate of every StageRun whose own section sets none.
READS: dict[str, Callable[[Any], Reads]] = {
    "prepare_model": lambda P: Reads(["prepare_model", "project.max_reject_rate"]),
    "ingest": lambda P: Reads(["ingest.sources.${key}", "ingest.defaults", "project"]),
    "prompt_dedup": _prompt_dedup,
    "distill": _distill,
    "multiturn": _multiturn,
    "scenarios": _scenarios,
    "completion": _completion,
    "preferences": _preferences,
    "score": _score,
    "dedup": lambda P: Reads(["dedup", "project"] + [k.format(stage="dedup") for k in DEDUP_ENGINE_KEYS]),
    "mix": lambda P: Reads(["mix", "buckets", "project"]),
    "export": _export,
    "stats": lambda P: Reads(["stats", "project"]),
    "validate": lambda P: Reads(["validate", "mix.eval_fraction", "mix.eval_salt", "mix.production", "mix.phases",
                                 "buckets.extra", "project.max_reject_rate"]),
    "viewer": lambda P: Reads(["viewer", "project.seed", "project.max_line_bytes", "project.max_reject_rate"]),
    "train_eval": _train_eval,
    "judge_eval": _judge_eval,
    "card": lambda P: Reads(["export.card", "ingest.sources", "project.max_reject_rate"]),
    "costs": lambda P: Reads(["project.max_reject_rate"]),
    "report": lambda P: Reads(["tracking", "project.max_reject_rate"]),
}

# Stages that glob metrics files: which declared metrics outs of other stages their code reads.
METRICS_READERS: dict[str, Callable[[str], bool]] = {
    # track/report.collect_costs: metrics_files() = metrics/**/*.json outside plots/
    "costs": lambda p: p.endswith(".json") and not p.startswith("metrics/plots/"),
    # export/card.build_card: metrics/*.json and metrics/ingest/*.json
    "card": lambda p: p.endswith(".json") and p.rsplit("/", 1)[0] in ("metrics", "metrics/ingest"),
    # commands/report: metrics_files() plus every file in metrics/plots/
    "report": lambda p: True,
}


def _get(data: Any, dotted: str) -> tuple[bool, Any]:
    cur = data
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return False, None
        cur = cur[part]
    return True, cur


def resolve_keys(keys: Iterable[str], raw: dict) -> list[str]:
    """Each key, or its nearest ancestor present in params.yaml; keys under another listed key dropped."""
    out: list[str] = []
    for key in keys:
        if "${" not in key:
            parts = key.split(".")
            while len(parts) > 1 and not _get(raw, ".".join(parts))[0]:
                parts.pop()
            key = ".".join(parts)
        if key not in out:
            out.append(key)
    return [k for k in out if not any(k.startswith(o + ".") for o in out if o != k)]


# -- the pipeline ----------------------------------------------------------------------------------------

def load_stages(dvc_yaml: Path) -> dict[str, dict]:
    """name -> stage body (the `do:` body of a foreach stage), from a plain YAML read."""
    stages = yaml.safe_load(dvc_yaml.read_text(encoding="utf-8"))["stages"]
    return {n: (s["do"] if "foreach" in s else s) for n, s in stages.items()}


def script_of(cmd: str) -> str:
    m = re.search(r"\bpython3?\s+(scripts/\S+\.py)\b", cmd)
    if not m:
        raise ValueError(f"no `python scripts/<stage>.py` in cmd: {cmd}")
    return m.group(1)


def _outs(stage: dict) -> list[str]:
    entries = [o for k in ("outs", "metrics", "plots") for o in stage.get(k) or []]
    return [o if isinstance(o, str) else next(iter(o)) for o in entries]


def expanded_outs(dvc_yaml: Path, raw_params: dict) -> dict[str, list[str]]:
    """Every stage's outs (metrics and plots included), foreach stages expanded over their keys."""
    stages = yaml.safe_load(dvc_yaml.read_text(encoding="utf-8"))["stages"]
    out: dict[str, list[str]] = {}
    for name, s in stages.items():
        if "foreach" not in s:
            out[name] = _outs(s)
            continue
        items = s["foreach"]
        if isinstance(items, str):
            items = _get(raw_params, items.strip()[2:-1])[1] or {}
        keys = list(items) if isinstance(items, (dict, list)) else []
        out[name] = [o.replace("${key}", str(k)).replace("${item}", str(k)) for k in keys for o in _outs(s["do"])]
    return out


@dataclass
class Expected:
    code: list[str]      # scripts/<stage>.py + src/distillery/**.py, sorted
    other: list[str]     # package data, prompt folders, template files
    metrics: list[str]   # metrics files (metrics readers only)
    params: list[str]


def _rel(root: Path, p: Path) -> str:
    return p.relative_to(root).as_posix()


def prompt_deps(root: Path, values: dict, template_keys: Iterable[str]) -> list[str]:
    """Template folders (package, and project override when present) or files the stage renders."""
    out: list[str] = []
    for key in template_keys:
        value = _get(values, key)[1]
        if not value:
            continue
        value = str(value)
        if value.startswith("prompts/"):
            sub = value.split("/")[1]
            deps = [f"src/distillery/prompts/{sub}"] + ([f"prompts/{sub}"] if (root / "prompts" / sub).is_dir() else [])
        else:
            deps = [value]
        out += [d for d in deps if d not in out]
    return out


def loaded_sections(params_file: Path, declared: tuple[str, ...] | None) -> set[str]:
    """The sections `load_params(sections=declared)` validates (its config modules are what it imports)."""
    from distillery.core.params import SECTIONS, attr_name, load_params

    if "sections" not in inspect.signature(load_params).parameters:  # the old loader imports every section
        return set(SECTIONS)
    by_attr = {attr_name(n): n for n in SECTIONS}
    P = load_params(params_file, sections=declared)
    return {by_attr.get(n, n) for n in type(P).model_fields}


def compute(root: Path, dvc_yaml: Path | None = None) -> dict[str, Expected]:
    """What dvc.yaml should list for every stage."""
    from distillery.core.params import SECTIONS, load_params

    dvc_yaml = dvc_yaml or root / DVC_YAML
    src = root / "src"
    params_file = root / PARAMS_YAML
    raw = yaml.safe_load(params_file.read_text(encoding="utf-8")) or {}
    P = load_params(params_file)
    values = P.model_dump(mode="json", by_alias=True)
    outs = expanded_outs(dvc_yaml, raw)
    result: dict[str, Expected] = {}
    for name, stage in load_stages(dvc_yaml).items():
        if name not in READS:
            raise KeyError(f"stage {name!r} is not in stage_deps.READS: add what it reads")
        script = root / script_of(stage["cmd"])
        reads = READS[name](P)
        keys = reads.keys + [f"llm.teachers.{t}" for t in sorted(reads.teachers)]
        params = resolve_keys(keys, raw)
        commands = [f for f in closure(src, [script]) if f.parent.name == "commands"]
        sections = loaded_sections(params_file, declared_sections(commands))
        sections |= {k.split(".")[0] for k in params} | set(ALWAYS_LOADED)
        files = closure(src, [script], [SECTIONS[s].split(":")[0] for s in sorted(sections)])
        code = [_rel(root, script)] + sorted(_rel(root, f) for f in files)
        other = list(EXTRA_DEPS.get(name, ())) + prompt_deps(root, values, reads.templates)
        reader = METRICS_READERS.get(name)
        metrics = sorted({p for st, ps in outs.items() if st != name for p in ps
                          if p.startswith("metrics/") and reader(p)}) if reader else []
        result[name] = Expected(code, other, metrics, params)
    return result


def is_managed(stage: str, dep: str) -> bool:
    """Deps this tool owns: code, package data, prompts, templates, and (for metrics readers) metrics."""
    if dep.startswith(("scripts/", "src/", "prompts/")) or dep == "prompts" or dep.endswith(".j2"):
        return True
    return stage in METRICS_READERS and (dep == "metrics" or dep.startswith("metrics/"))


def _listed_params(stage: dict) -> list[str]:
    return [p for p in stage.get("params") or [] if isinstance(p, str)]


def check(root: Path, dvc_yaml: Path | None = None, expected: dict[str, Expected] | None = None) -> list[str]:
    """One line per difference between dvc.yaml and what the stages run and read (empty = in sync)."""
    dvc_yaml = dvc_yaml or root / DVC_YAML
    problems: list[str] = []
    stages = load_stages(dvc_yaml)
    for name, exp in (expected or compute(root, dvc_yaml)).items():
        deps = [d for d in stages[name].get("deps") or [] if is_managed(name, d)]
        want = exp.code + exp.other + exp.metrics
        problems += [f"{name}: missing dep {d}" for d in want if d not in deps]
        problems += [f"{name}: extra dep {d}" for d in deps if d not in want]
        have = _listed_params(stages[name])
        problems += [f"{name}: missing param {p}" for p in exp.params if p not in have]
        problems += [f"{name}: extra param {p}" for p in have if p not in exp.params]
    return problems


def write(root: Path, dvc_yaml: Path | None = None, expected: dict[str, Expected] | None = None) -> bool:
    """Rewrite the managed deps and the params of every stage with ruamel round-trip (comments, order and
    unmanaged entries kept). Returns whether the file changed."""
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedSeq

    dvc_yaml = dvc_yaml or root / DVC_YAML
    expected = expected or compute(root, dvc_yaml)
    y = YAML()
    y.preserve_quotes = True
    y.width = 4096
    y.indent(mapping=2, sequence=2, offset=0)
    before = dvc_yaml.read_text(encoding="utf-8")
    doc = y.load(before)
    for name, body in doc["stages"].items():
        stage = body["do"] if "foreach" in body else body
        exp = expected[name]
        kept = [d for d in stage.get("deps") or [] if not (isinstance(d, str) and is_managed(name, d))]
        stage["deps"] = CommentedSeq(exp.code + exp.other + kept + exp.metrics)
        others = [p for p in stage.get("params") or [] if not isinstance(p, str)]
        if "params" in stage:
            del stage["params"]
        if exp.params or others:
            stage.insert(list(stage).index("deps") + 1, "params", CommentedSeq(exp.params + others))
    buf = io.StringIO()
    y.dump(doc, buf)
    if buf.getvalue() == before:
        return False
    dvc_yaml.write_text(buf.getvalue(), encoding="utf-8")
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m distillery.testing.stage_deps", description=__doc__.split("\n")[0])
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="print the differences; exit 1 when there are any")
    mode.add_argument("--write", action="store_true", help="rewrite the code deps and params in dvc.yaml")
    mode.add_argument("--show", action="store_true", help="print what every stage should list")
    ap.add_argument("--root", type=Path, default=Path("."), help="repository root (default: .)")
    a = ap.parse_args(argv)
    root = a.root.resolve()
    if a.show:
        for name, exp in compute(root).items():
            print(f"{name}: {len(exp.code)} code files, params {', '.join(exp.params)}")
            for d in exp.code + exp.other + exp.metrics:
                print(f"  {d}")
        return 0
    if a.write:
        print("dvc.yaml rewritten" if write(root) else "dvc.yaml already in sync")
        return 0
    problems = check(root)
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} difference(s); run `python -m distillery.testing.stage_deps --write`", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
