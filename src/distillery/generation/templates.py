"""Prompt templates: Jinja2 files shipped in the package, overridable per project, identified by sha.

A params value `prompts/<stage>/<file>.j2` names a template, not a path: it is looked up first in
the project's own `prompts/` folder (project root = DVC_ROOT, else the current directory), so a
project can replace one file, then in the defaults shipped as package data (distillery/prompts),
so a stage works from any folder. Any other value is a plain file path. The template's name and
the sha256 of its source go into every record's lineage, so an overriding file is visible in the
data; template syntax is strict (an unknown variable stops the stage with one line).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import jinja2
from jinja2.loaders import split_template_path

from ..core.errors import ParamsError

PREFIX = "prompts/"
PACKAGE_PROMPTS = files("distillery") / "prompts"


@dataclass(frozen=True)
class Template:
    name: str
    sha: str
    _tpl: jinja2.Template

    def render(self, **context: Any) -> str:
        try:
            return self._tpl.render(**context).strip()
        except jinja2.UndefinedError as e:
            raise ParamsError(f"template {self.name}: {e.message}") from None

    @property
    def ref(self) -> dict[str, str]:
        """What lineage records about the template."""
        return {"template": self.name, "template_sha": self.sha}


class _ResourceLoader(jinja2.BaseLoader):
    """Templates under a Traversable (the package data when it is not a plain folder, e.g. a zip)."""

    def __init__(self, root: Traversable):
        self.root = root

    def get_source(self, environment, template):
        node = self.root
        for part in split_template_path(template):
            node = node / part
        if not node.is_file():
            raise jinja2.TemplateNotFound(template)
        return node.read_text(encoding="utf-8"), None, lambda: True


def project_prompts() -> Path:
    """The project's override folder: <DVC_ROOT or cwd>/prompts (it need not exist)."""
    return Path(os.environ.get("DVC_ROOT") or os.getcwd()) / "prompts"


@lru_cache(maxsize=8)
def _env(project_dir: str) -> jinja2.Environment:
    pkg = PACKAGE_PROMPTS
    defaults = jinja2.FileSystemLoader(str(pkg)) if isinstance(pkg, Path) else _ResourceLoader(pkg)
    return jinja2.Environment(loader=jinja2.ChoiceLoader([jinja2.FileSystemLoader(project_dir), defaults]),
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=False,
                              trim_blocks=True, lstrip_blocks=True, autoescape=False)


@lru_cache(maxsize=64)
def _compile(env: jinja2.Environment, name: str, src: str) -> Template:
    try:
        tpl = env.from_string(src)
    except jinja2.TemplateSyntaxError as e:
        raise ParamsError(f"template {name}: line {e.lineno}: {e.message}") from None
    return Template(name, hashlib.sha256(src.encode("utf-8")).hexdigest()[:16], tpl)


def _source(env: jinja2.Environment, name: str) -> str | None:
    """`prompts/...` from the project folder or the package; anything else read as a file path."""
    if name.startswith(PREFIX):
        try:
            return env.loader.get_source(env, name[len(PREFIX):])[0]
        except jinja2.TemplateNotFound:
            return None
    p = Path(name)
    return p.read_text(encoding="utf-8") if p.is_file() else None


def load_template(path: str | Path, key: str = "") -> Template:
    """Load a template; a missing one stops the stage with one line naming the params key."""
    name = path.as_posix() if isinstance(path, Path) else str(path)
    env = _env(str(project_prompts()))
    src = _source(env, name)
    if src is None:
        where = f"{key}: " if key else ""
        extra = f" (not in {project_prompts()} nor the package's prompts)" if name.startswith(PREFIX) else ""
        raise ParamsError(f"{where}template not found: {name}{extra}")
    return _compile(env, name, src)
