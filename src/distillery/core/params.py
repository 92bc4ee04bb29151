"""params.yaml: one section per stage, each a pydantic model living next to the code it configures.

`load_params` validates the sections a stage reads (all of them by default) plus `project` and
`tracking`; sections it does not read are not checked, so a missing file in one ingest source does
not stop `dedup`. It also checks the names a section uses that another section defines (teachers in
`llm.teachers`, buckets in `buckets`), and `min_x <= max_x` in every model. The first problem stops
with one line naming the key (`params.yaml: dedup.threshold: ...`) or the missing path. Every field
has a default, so a stage script also runs outside the repo, on any file, with no params.yaml at all.
"""

from __future__ import annotations

import functools
import importlib
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Callable, Iterable, Iterator, Union, get_args, get_origin

import yaml
from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, create_model,
                      model_validator)

from .errors import ParamsError

DEFAULT_PARAMS = Path("params.yaml")
ALWAYS_LOADED = ("project", "tracking")


class KeyProblem(ValueError):
    """Raised by a model validator to blame a key below its model: the error line names `<model>.<key>`."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


class SectionNotLoaded(RuntimeError):
    """A stage read a params section it did not ask `load_params(sections=...)` for (a programming error)."""


def _high_of(low: str) -> str | None:
    """The upper partner of a lower-bound field name: min_x -> max_x, x_min -> x_max, lo -> hi, x_lo -> x_hi."""
    if low.startswith("min_"):
        return "max_" + low[4:]
    if low.endswith("_min"):
        return low[:-4] + "_max"
    if low == "lo" or low.endswith("_lo"):
        return low[:-2] + "hi"
    return None


@functools.cache
def _range_pairs(cls: type[BaseModel]) -> tuple[tuple[str, str], ...]:
    fields = cls.model_fields
    return tuple((lo, hi) for lo in fields if (hi := _high_of(lo)) in fields)


class Section(BaseModel):
    """Base of every params section: unknown keys are errors, and every min/max pair is in order."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    @model_validator(mode="after")
    def _ordered_ranges(self) -> "Section":
        """A low bound above its high bound (min_response_words > max_response_words) keeps nothing."""
        for lo, hi in _range_pairs(type(self)):
            a, b = getattr(self, lo), getattr(self, hi)
            if a is not None and b is not None and a > b:
                raise KeyProblem(lo, f"{a!r} is above {hi} ({b!r})")
        return self


def _must_exist(p: Path, info: ValidationInfo) -> Path:
    """Relative paths are checked against the params file's folder (the repo root under DVC)."""
    base = (info.context or {}).get("base_dir") if info is not None else None
    full = Path(p) if Path(p).is_absolute() or base is None else Path(base) / p
    if not full.exists():
        raise ValueError(f"path not found: {p}")
    return p


ExistingPath = Annotated[Path, AfterValidator(_must_exist)]


class Ref:
    """Marks a str (a field, a list item or a dict key) as a name that another section defines."""

    __slots__ = ("kind",)

    def __init__(self, kind: str):
        self.kind = kind

    def __repr__(self) -> str:
        return f"Ref({self.kind!r})"


TeacherName = Annotated[str, Ref("teacher")]  # a key of llm.teachers ("" = none)
BucketName = Annotated[str, Ref("bucket")]    # a default bucket or one of buckets.extra


@dataclass(frozen=True)
class RefCheck:
    """Names of one kind must be defined in `section` (loaded for the check when a use is found)."""

    kind: str
    section: str
    names: Callable[[Any], Iterable[str]]
    problem: Callable[[str, list[str]], str]


# Checks across sections. A section's uses of names it defines itself are checked by its own validators.
CROSS_CHECKS: list[RefCheck] = [
    RefCheck("teacher", "llm", lambda llm: llm.teachers,
             lambda n, names: f"{n!r} is not defined in llm.teachers (defined: {', '.join(names) or 'none'})"),
    RefCheck("bucket", "buckets", lambda b: b.names,
             lambda n, names: f"unknown bucket {n!r} (known: {', '.join(sorted(names))}; add new ones to "
                              f"buckets.extra)"),
]


class ProjectParams(Section):
    """Settings shared by every stage."""

    seed: int = 42
    max_reject_rate: float = Field(0.05, ge=0, le=1, description="default reject-rate threshold of a stage")
    max_line_bytes: int = Field(4 * 1024 * 1024, gt=0, description="longer input lines are quarantined")
    metrics_dir: Path = Path("metrics")


# section name -> "module:Class". Each module holds only pydantic models (cheap to import).
SECTIONS: dict[str, str] = {
    "project": "distillery.core.params:ProjectParams",
    "prepare_model": "distillery.llm.config:PrepareModelParams",
    "llm": "distillery.llm.config:LLMParams",
    "ingest": "distillery.sources.config:IngestParams",
    "distill": "distillery.generation.config:DistillParams",
    "synthesize": "distillery.generation.config:SynthesizeParams",
    "preferences": "distillery.generation.config:PreferencesParams",
    "score": "distillery.generation.config:ScoreParams",
    "dedup": "distillery.dedup.config:DedupParams",
    "prompt_dedup": "distillery.dedup.config:PromptDedupParams",
    "buckets": "distillery.mix.config:BucketsParams",
    "mix": "distillery.mix.config:MixParams",
    "export": "distillery.export.config:ExportParams",
    "stats": "distillery.stats.config:StatsParams",
    "validate": "distillery.validate.config:ValidateParams",
    "viewer": "distillery.viewer.config:ViewerParams",
    "tracking": "distillery.track.config:TrackingParams",
    "train_eval": "distillery.train.config:TrainEvalParams",
    "judge_eval": "distillery.train.config:JudgeEvalParams",
    "remote": "distillery.train.config:RemoteParams",
    "engine": "distillery.distributed.config:EngineParams",
}


def attr_name(section: str) -> str:
    """Python attribute of a section ("validate" clashes with BaseModel.validate -> "validate_")."""
    return section + "_" if hasattr(BaseModel, section) else section


_BY_ATTR = {attr_name(n): n for n in SECTIONS}


class Params(BaseModel):
    """The loaded sections as attributes. One that was not loaded raises instead of giving defaults."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def __getattr__(self, item: str) -> Any:
        if item in _BY_ATTR:
            raise SectionNotLoaded(f"params section {_BY_ATTR[item]!r} was not loaded: add it to the stage's "
                                   f"load_params(sections=...)")
        return super().__getattr__(item)


def get_section(params: Any, section: str) -> Any:
    """A section of loaded params; SectionNotLoaded (a RuntimeError) when the stage did not load it."""
    if section not in SECTIONS:
        raise ValueError(f"unknown params section {section!r}")
    return getattr(params, attr_name(section))


def _import(spec: str) -> type[BaseModel]:
    mod, cls = spec.split(":")
    return getattr(importlib.import_module(mod), cls)


@functools.cache
def _root(names: tuple[str, ...]) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for name in names:
        model = _import(SECTIONS[name])
        fields[attr_name(name)] = (model, Field(default_factory=model, alias=name))
    return create_model("Params", __base__=Params, **fields)


def root_model() -> type[BaseModel]:
    """The model of a whole params file (every section)."""
    return _root(tuple(SECTIONS))


def _loc(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def format_validation_error(err: ValidationError, origin: str, prefix: tuple[str, ...] = ()) -> str:
    e = err.errors()[0]
    key = _loc((*prefix, *e["loc"]))
    more = f" [+{len(err.errors()) - 1} more]" if len(err.errors()) > 1 else ""
    problem = (e.get("ctx") or {}).get("error")
    if isinstance(problem, KeyProblem):
        return f"{origin}: {key}{'.' if key else ''}{problem.key}: {problem}{more}"
    if e["type"] == "extra_forbidden":
        return f"{origin}: {key}: unknown key"
    if e["type"] == "missing":
        return f"{origin}: {key}: required key is missing"
    msg = e["msg"].removeprefix("Value error, ")
    got = e.get("input")
    shown = "" if isinstance(got, (dict, list)) or got is None else f" (got {got!r})"
    return f"{origin}: {key}: {msg}{shown}{more}"


def _set_dotted(data: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    cur = data
    for k in keys[:-1]:
        nxt = cur.get(k)
        if not isinstance(nxt, dict):
            nxt = {}
            cur[k] = nxt
        cur = nxt
    cur[keys[-1]] = value


def safe_load(text: str) -> Any:
    """`yaml.safe_load` through libyaml when PyYAML has it: every stage reads params.yaml at start-up,
    and the pure-Python loader spends ~0.5 CPU s on it (same values, same YAMLError classes)."""
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def apply_overrides(data: dict, overrides: Iterable[str]) -> dict:
    """Apply `section.key=value` overrides (values parsed as YAML)."""
    for item in overrides:
        if "=" not in item:
            raise ParamsError(f"--set {item}: expected section.key=value")
        key, raw = item.split("=", 1)
        try:
            value = safe_load(raw) if raw != "" else ""
        except yaml.YAMLError as e:
            raise ParamsError(f"--set {key}: value is not valid YAML ({e.__class__.__name__})") from e
        _set_dotted(data, key.strip(), value)
    return data


def _read(p: Path, explicit: bool) -> dict:
    if not p.exists():
        if explicit:
            raise ParamsError(f"{p}: params file not found")
        return {}
    try:
        loaded = safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "context_mark", None) or getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}:" if mark else ""
        problem = getattr(e, "problem", None) or ""
        raise ParamsError(f"{p}:{where} not valid YAML ({problem})") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ParamsError(f"{p}: top level must be a mapping of sections")
    return loaded


def _uses(value: Any, ann: Any, key: str) -> Iterator[tuple[str, str, str]]:
    """(kind, dotted key, name) of every Ref-marked name under `value`, whose type is `ann`.

    Only keys the file (or an override) set are looked at: defaults name the default teacher and
    buckets, and a file that replaces llm.teachers need not restate every unused default."""
    if value is None:
        return
    if isinstance(value, BaseModel):
        fields = type(value).model_fields
        for name, info in fields.items():
            if name in value.model_fields_set:
                sub = f"{key}.{name}"
                v = getattr(value, name)
                for m in info.metadata:
                    if isinstance(m, Ref) and isinstance(v, str) and v:
                        yield m.kind, sub, v
                yield from _uses(v, info.annotation, sub)
        return
    origin, args = get_origin(ann), get_args(ann)
    if origin is Annotated:
        for m in args[1:]:
            if isinstance(m, Ref) and isinstance(value, str) and value:
                yield m.kind, key, value
        yield from _uses(value, args[0], key)
    elif origin in (Union, types.UnionType):
        for a in args:
            yield from _uses(value, a, key)
    elif origin in (list, tuple, set, frozenset) and args:
        for i, v in enumerate(value):
            yield from _uses(v, args[0], f"{key}[{i}]")
    elif origin is dict and isinstance(value, dict):
        for k, v in value.items():
            yield from _uses(k, args[0], f"{key}.{k}")
            yield from _uses(v, args[1], f"{key}.{k}")


def load_params(path: str | Path | None = None, overrides: Iterable[str] = (), *,
                extra: dict | None = None, sections: Iterable[str] | None = None) -> Any:
    """Load and validate params.yaml (or defaults when the default file is absent).

    sections: the sections the caller reads (None = all). Only these, `project` and `tracking` are
    validated (plus `llm` / `buckets` when a loaded section names a teacher / bucket); other known
    sections in the file are skipped unchecked, and reading one later raises SectionNotLoaded. An
    unknown top-level key is still an error, so a misspelt section never goes unnoticed.
    """
    if isinstance(sections, str):
        sections = (sections,)
    wanted = set(SECTIONS) if sections is None else {*ALWAYS_LOADED, *sections}
    unknown = sorted(wanted - set(SECTIONS))
    if unknown:
        raise ValueError(f"load_params: unknown section {unknown[0]!r} (known: {', '.join(SECTIONS)})")
    p = Path(path) if path is not None else DEFAULT_PARAMS
    data = _read(p, explicit=path is not None)
    if extra:
        for k, v in extra.items():
            _set_dotted(data, k, v)
    apply_overrides(data, overrides)
    origin = str(p)
    for k in data:
        if k not in SECTIONS and k not in _BY_ATTR:
            raise ParamsError(f"{origin}: {k}: unknown key")
    data = {_BY_ATTR.get(k, k): v for k, v in data.items()}
    context = {"base_dir": p.parent if p.exists() else Path(".")}

    def validate(name: str) -> BaseModel:
        model = _import(SECTIONS[name])
        try:
            return model.model_validate(data.get(name, {}), context=context)
        except ValidationError as e:
            raise ParamsError(format_validation_error(e, origin, (name,))) from None

    loaded = {name: validate(name) for name in SECTIONS if name in wanted}
    uses = [u for name, sec in loaded.items() for u in _uses(sec, type(sec), name)]
    checks = {c.kind: c for c in CROSS_CHECKS}
    defined: dict[str, list[str]] = {}
    for kind, key, name in uses:
        check = checks.get(kind)
        if check is None:
            continue
        if kind not in defined:
            if check.section not in loaded:
                loaded[check.section] = validate(check.section)
            defined[kind] = list(check.names(loaded[check.section]))
        if name not in defined[kind]:
            raise ParamsError(f"{origin}: {key}: {check.problem(name, defined[kind])}")
    names = tuple(n for n in SECTIONS if n in loaded)
    return _root(names).model_validate({n: loaded[n] for n in names})


def section_dict(params: Any, name: str) -> dict:
    """A section as plain JSON-able data (for lineage, MLflow and metrics)."""
    return get_section(params, name).model_dump(mode="json")
