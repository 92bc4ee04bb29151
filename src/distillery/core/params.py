"""params.yaml: one section per stage, each a pydantic model living next to the code it configures.

`load_params` validates the whole file on load; the first problem stops with one line naming the
key (`params.yaml: dedup.threshold: ...`) or the missing path. Every field has a default, so a
stage script also runs outside the repo, on any file, with no params.yaml at all.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated, Any, Iterable

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, create_model

from .errors import ParamsError

DEFAULT_PARAMS = Path("params.yaml")


class Section(BaseModel):
    """Base of every params section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


def _must_exist(p: Path, info: ValidationInfo) -> Path:
    """Relative paths are checked against the params file's folder (the repo root under DVC)."""
    base = (info.context or {}).get("base_dir") if info is not None else None
    full = Path(p) if Path(p).is_absolute() or base is None else Path(base) / p
    if not full.exists():
        raise ValueError(f"path not found: {p}")
    return p


ExistingPath = Annotated[Path, AfterValidator(_must_exist)]


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
    "buckets": "distillery.mix.config:BucketsParams",
    "mix": "distillery.mix.config:MixParams",
    "export": "distillery.export.config:ExportParams",
    "stats": "distillery.stats.config:StatsParams",
    "validate": "distillery.validate.config:ValidateParams",
    "tracking": "distillery.track.config:TrackingParams",
    "train_eval": "distillery.train.config:TrainEvalParams",
    "remote": "distillery.train.config:RemoteParams",
    "engine": "distillery.distributed.config:EngineParams",
}

_ROOT: type[BaseModel] | None = None


def attr_name(section: str) -> str:
    """Python attribute of a section ("validate" clashes with BaseModel.validate -> "validate_")."""
    return section + "_" if hasattr(BaseModel, section) else section


def get_section(params: Any, section: str) -> Any:
    return getattr(params, attr_name(section))


def _import(spec: str) -> type[BaseModel]:
    mod, cls = spec.split(":")
    return getattr(importlib.import_module(mod), cls)


def root_model() -> type[BaseModel]:
    global _ROOT
    if _ROOT is None:
        fields: dict[str, Any] = {}
        for name, spec in SECTIONS.items():
            model = _import(spec)
            fields[attr_name(name)] = (model, Field(default_factory=model, alias=name))
        _ROOT = create_model("Params", __config__=ConfigDict(extra="forbid", populate_by_name=True), **fields)
    return _ROOT


def _loc(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def format_validation_error(err: ValidationError, origin: str) -> str:
    e = err.errors()[0]
    key = _loc(e["loc"])
    if e["type"] == "extra_forbidden":
        return f"{origin}: {key}: unknown key"
    if e["type"] == "missing":
        return f"{origin}: {key}: required key is missing"
    msg = e["msg"].removeprefix("Value error, ")
    got = e.get("input")
    shown = "" if isinstance(got, (dict, list)) or got is None else f" (got {got!r})"
    more = f" [+{len(err.errors()) - 1} more]" if len(err.errors()) > 1 else ""
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


def apply_overrides(data: dict, overrides: Iterable[str]) -> dict:
    """Apply `section.key=value` overrides (values parsed as YAML)."""
    for item in overrides:
        if "=" not in item:
            raise ParamsError(f"--set {item}: expected section.key=value")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError as e:
            raise ParamsError(f"--set {key}: value is not valid YAML ({e.__class__.__name__})") from e
        _set_dotted(data, key.strip(), value)
    return data


def load_params(path: str | Path | None = None, overrides: Iterable[str] = (), *,
                extra: dict | None = None) -> Any:
    """Load and validate params.yaml (or defaults when the default file is absent)."""
    explicit = path is not None
    p = Path(path) if path is not None else DEFAULT_PARAMS
    data: dict = {}
    if p.exists():
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            mark = getattr(e, "context_mark", None) or getattr(e, "problem_mark", None)
            where = f" line {mark.line + 1}:" if mark else ""
            problem = getattr(e, "problem", None) or ""
            raise ParamsError(f"{p}:{where} not valid YAML ({problem})") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ParamsError(f"{p}: top level must be a mapping of sections")
        data = loaded
    elif explicit:
        raise ParamsError(f"{p}: params file not found")
    if extra:
        for k, v in extra.items():
            _set_dotted(data, k, v)
    apply_overrides(data, overrides)
    try:
        return root_model().model_validate(data, context={"base_dir": p.parent if p.exists() else Path(".")})
    except ValidationError as e:
        raise ParamsError(format_validation_error(e, str(p))) from None


def section_dict(params: Any, name: str) -> dict:
    """A section as plain JSON-able data (for lineage, MLflow and metrics)."""
    return get_section(params, name).model_dump(mode="json")
