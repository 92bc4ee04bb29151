"""Token lengths of conversations under a chat template, in batches.

Each conversation is rendered to text by the tokenizer's chat template (or the one in params) and
the texts are tokenised together by the fast tokenizer with `add_special_tokens=False`: the
template already writes every special token (BOS included, when the model has one), so nothing
is counted twice. This equals `apply_chat_template(tokenize=True)` and is much faster in batches.
The prompt is rendered with `add_generation_prompt=True`, so completion = full - prompt is
exactly the tokens a trainer would put loss on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core.errors import DistilleryError
from ..models import load_tokenizer


def resolve_template(template: str | None) -> str | None:
    """Inline Jinja text, or the contents of a .jinja/.j2 file path."""
    if template is None:
        return None
    p = Path(template)
    if template.endswith((".jinja", ".j2", ".jinja2")):
        if not p.exists():
            raise DistilleryError(f"stats.chat_template: file not found: {template}")
        return p.read_text(encoding="utf-8")
    return template


class TemplateLengths:
    """Counts tokens of conversations as the target model will see them."""

    def __init__(self, tokenizer: str, chat_template: str | None = None):
        self.tok = load_tokenizer(tokenizer)
        self.template = resolve_template(chat_template)
        if self.template is None and not getattr(self.tok, "chat_template", None):
            raise DistilleryError(f"stats.tokenizer {tokenizer}: has no chat template; set stats.chat_template")

    def render(self, convs: list[list[dict]], generation_prompt: bool) -> list[str]:
        kw: dict[str, Any] = {"tokenize": False, "add_generation_prompt": generation_prompt}
        if self.template is not None:
            kw["chat_template"] = self.template
        out = self.tok.apply_chat_template(convs, **kw)
        return [out] if isinstance(out, str) else list(out)

    def count(self, texts: list[str]) -> list[int]:
        if not texts:
            return []
        enc = self.tok(texts, add_special_tokens=False, return_attention_mask=False)
        return [len(ids) for ids in enc["input_ids"]]

    def lengths(self, convs: list[list[dict]], generation_prompt: bool = False) -> list[int]:
        """Token count of each conversation rendered by the template."""
        return self.count(self.render(convs, generation_prompt))

    def try_render(self, conv: list[dict], generation_prompt: bool) -> str | None:
        """Render one conversation; the error text when the template rejects it."""
        try:
            self.render([conv], generation_prompt)
            return None
        except Exception as e:  # jinja2 TemplateError / raise_exception() in templates
            return f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
