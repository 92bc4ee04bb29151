"""Prompt templates: Jinja2 files in the repo (DVC deps), rendered strictly, identified by sha.

A template's name and the sha256 of its source go into every record's lineage, so a changed
template is visible in the data and (as a DVC dep) reruns the stages that render it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from ..core.errors import ParamsError

_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False,
                          trim_blocks=True, lstrip_blocks=True, autoescape=False)


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


@lru_cache(maxsize=64)
def _load(path: str, mtime_ns: int) -> Template:
    src = Path(path).read_text(encoding="utf-8")
    try:
        tpl = _ENV.from_string(src)
    except jinja2.TemplateSyntaxError as e:
        raise ParamsError(f"template {path}: line {e.lineno}: {e.message}") from None
    return Template(path, hashlib.sha256(src.encode("utf-8")).hexdigest()[:16], tpl)


def load_template(path: str | Path, key: str = "") -> Template:
    """Load a template file; a missing file stops the stage with one line naming the params key."""
    p = Path(path)
    if not p.is_file():
        where = f"{key}: " if key else ""
        raise ParamsError(f"{where}template not found: {p}")
    return _load(str(p), p.stat().st_mtime_ns)
