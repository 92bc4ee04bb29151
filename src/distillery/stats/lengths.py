"""Token lengths of conversations under a chat template, in batches.

Each conversation is rendered to text by the tokenizer's chat template (or the one in params) and
counted with `add_special_tokens=False`: the template already writes every special token (BOS
included, when the model has one), so nothing is counted twice. This equals
`apply_chat_template(tokenize=True)`. The prompt is rendered with `add_generation_prompt=True`, so
completion = full - prompt is exactly the tokens a trainer would put loss on.

`measure` is the stage's path: every text of a row is counted by `TokenCounter`, which tokenises
what the prompt and the answers share once. `lengths` (one tokenizer call per text) is the plain
reference the tests hold `measure` to.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from ..core.errors import DistilleryError
from ..models import load_tokenizer, resolve_model_path
from .rows import Row
from .templates import KNOWN
from .tokens import TokenCounter

PART_NAMES = {"sft": ("full",), "dpo": ("chosen", "rejected")}
# conversations the direct renderer must render as apply_chat_template does before it is used
PROBE_CONVERSATIONS = [
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
     {"role": "assistant", "content": "4"}],
    [{"role": "user", "content": " lead\nand trail \n"}, {"role": "assistant", "content": "a"},
     {"role": "user", "content": "Ünïcödé 東京 😀"}, {"role": "assistant", "content": "{{ not jinja }} {% raw %}"}],
]


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


GENERIC_CLASSES = ("TokenizersBackend", "PreTrainedTokenizerFast")


def load(name: str):
    """The tokenizer as `models.load_tokenizer` loads it. A folder whose tokenizer_config names the
    generic class (a plain tokenizer.json wrapper, SmolLM2's) is loaded by that class directly, the
    class AutoTokenizer would pick, without AutoConfig importing torch (~8 CPU s of start-up)."""
    path = Path(resolve_model_path(name))
    try:
        cls = json.loads((path / "tokenizer_config.json").read_text(encoding="utf-8")).get("tokenizer_class")
    except (OSError, ValueError):
        cls = None
    if cls not in GENERIC_CLASSES or not (path / "tokenizer.json").is_file():
        return load_tokenizer(name)
    from transformers import PreTrainedTokenizerFast

    try:
        return PreTrainedTokenizerFast.from_pretrained(path)
    except (OSError, ValueError) as e:
        raise DistilleryError(f"tokenizer {name}: cannot load ({str(e).splitlines()[0][:200]})") from e


def _error(e: Exception) -> str:
    return f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"


def parts(kind: str, counts: tuple[int, ...]) -> dict[str, int]:
    """{prompt, full, completion} or {prompt, chosen, chosen_completion, rejected, rejected_completion}
    from (prompt, full...) counts, in the order lengths.jsonl has always written them."""
    out = {"prompt": counts[0]}
    for name, n in zip(PART_NAMES[kind], counts[1:]):
        out[name] = n
        out["completion" if name == "full" else f"{name}_completion"] = max(0, n - counts[0])
    return out


class TemplateLengths:
    """Counts tokens of conversations as the target model will see them."""

    def __init__(self, tokenizer: str, chat_template: str | None = None, fast: bool = True):
        self.tok = load(tokenizer)
        self.template = resolve_template(chat_template)
        if self.template is None and not getattr(self.tok, "chat_template", None):
            raise DistilleryError(f"stats.tokenizer {tokenizer}: has no chat template; set stats.chat_template")
        self.counter = TokenCounter(self.tok, fast=fast)
        self._direct = self._direct_renderer() if fast else None

    def _direct_renderer(self):
        """A faster renderer of the template, used only when it renders the probe conversations exactly as
        `apply_chat_template` does: a plain Python function when the template is one `templates.KNOWN`
        lists (no Jinja at all), else the compiled template called as `apply_chat_template` calls it,
        without its per-call work (copying every message into plain JSON types, aliasing reasoning fields,
        argument checks; ~10% of this stage's CPU). Rows reach it as plain str role/content dicts, which
        that work leaves as they are."""
        template = self.template or self.tok.chat_template
        known = KNOWN.get(template)
        if known is not None and self._renders_probes(known):
            return known
        try:
            from transformers.utils.chat_template_utils import _compile_jinja_template

            compiled = _compile_jinja_template(template)
            extra = {k: v for k, v in self.tok.special_tokens_map.items() if isinstance(v, str)}
            if len(extra) != len(self.tok.special_tokens_map):
                return None

            def render(convs: list[list[dict]], generation_prompt: bool) -> list[str]:
                return [compiled.render(messages=c, tools=None, documents=None,
                                        add_generation_prompt=generation_prompt, **extra) for c in convs]
            return render if self._renders_probes(render) else None
        except Exception:  # a transformers without this helper, or a template the probe trips: the plain path
            return None

    def _renders_probes(self, render: Callable[[list[list[dict]], bool], list[str]]) -> bool:
        """Whether `render` gives the probe conversations (with and without the generation prompt) exactly
        what `apply_chat_template` gives."""
        try:
            for gp in (False, True):
                convs = [c[:-1] if gp else c for c in PROBE_CONVERSATIONS]
                if render(convs, gp) != self._render_reference(convs, gp):
                    return False
            return True
        except Exception:  # a renderer that cannot take the probes is not used
            return False

    def identity(self) -> str:
        """What the counts depend on besides the row: tokenizer, template and the tokens it is given."""
        return "\n".join([self.tok.backend_tokenizer.to_str(), self.template or self.tok.chat_template or "",
                          repr(sorted(self.tok.special_tokens_map.items()))])

    def render(self, convs: list[list[dict]], generation_prompt: bool) -> list[str]:
        if self._direct is not None:
            return self._direct(convs, generation_prompt)
        return self._render_reference(convs, generation_prompt)

    def _render_reference(self, convs: list[list[dict]], generation_prompt: bool) -> list[str]:
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
        """Token count of each conversation rendered by the template (the reference: one call per text)."""
        return self.count(self._render_reference(convs, generation_prompt))

    def _render_rows(self, rows: list[Row]) -> list[list[str] | str]:
        """[prompt text, full text per answer] per row, or the template's error for that row."""
        try:
            prompts = self.render([r.prompt for r in rows], True)
            fulls = [self.render([r.prompt + r.answers[i] for r in rows], False) for i in range(len(rows[0].answers))] \
                if len({len(r.answers) for r in rows}) == 1 else None
            if fulls is not None:
                return [[p, *(f[j] for f in fulls)] for j, p in enumerate(prompts)]
        except Exception:  # a template rejected some row: render row by row to find it
            pass
        out: list[list[str] | str] = []
        for r in rows:
            try:
                out.append(self.render([r.prompt], True) + self.render([r.prompt + a for a in r.answers], False))
            except Exception as e:  # jinja2 TemplateError / raise_exception() in templates
                out.append(_error(e))
        return out

    def measure(self, rows: list[Row]) -> list[tuple[int, ...] | str]:
        """(prompt, full) for SFT rows, (prompt, chosen, rejected) for DPO rows, or an error text."""
        rendered = self._render_rows(rows) if rows else []
        flat = [t for texts in rendered if not isinstance(texts, str) for t in texts]
        try:
            counts = iter(self.counter.count(flat))
        except Exception:  # some text the tokenizer cannot take (a lone surrogate): count row by row
            counts = None
        out: list[tuple[int, ...] | str] = []
        for texts in rendered:
            if isinstance(texts, str):
                out.append(texts)
            elif counts is not None:
                out.append(tuple(next(counts) for _ in texts))
            else:
                try:
                    out.append(tuple(self.counter.count(texts)))
                except Exception as e:
                    out.append(_error(e))
        return out

    def try_render(self, conv: list[dict], generation_prompt: bool) -> str | None:
        """Render one conversation; the error text when the template rejects it."""
        try:
            self.render([conv], generation_prompt)
            return None
        except Exception as e:  # jinja2 TemplateError / raise_exception() in templates
            return _error(e)
