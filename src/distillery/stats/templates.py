"""Chat templates rendered in Python: the shipped tokenizer's, for counting tokens without Jinja.

Why: rendering every row through Jinja's sandboxed environment was a third of the stats stage's CPU
(cProfile of 100K rows: ~21 of 62 s; the sandbox's attribute checks and a new context per call). A
template listed here is rendered by a plain function instead, chosen only when the template text is
exactly the listed one, and `TemplateLengths` still checks it renders the probe conversations as
`apply_chat_template` does before using it (tests hold it to `apply_chat_template` on random rows).
"""

from __future__ import annotations

from typing import Callable

# SmolLM2-Instruct's template (ChatML with a default system turn), as its tokenizer_config.json has it
SMOLLM2 = (
    '{% for message in messages %}'
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    '{% endif %}'
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    '{% endfor %}'
    '{% if add_generation_prompt %}'
    "{{ '<|im_start|>assistant\n' }}"
    '{% endif %}'
)
SMOLLM2_SYSTEM = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"


def render_smollm2(convs: list[list[dict]], generation_prompt: bool) -> list[str]:
    """SMOLLM2 for plain str role/content messages: the default system turn before a first non-system
    message, one `<|im_start|>role\ncontent<|im_end|>\n` per message, the assistant header when asked."""
    out = []
    tail = "<|im_start|>assistant\n" if generation_prompt else ""
    for msgs in convs:
        head = SMOLLM2_SYSTEM if msgs and msgs[0]["role"] != "system" else ""
        out.append(head + "".join(["<|im_start|>" + m["role"] + "\n" + m["content"] + "<|im_end|>\n" for m in msgs])
                   + tail)
    return out


KNOWN: dict[str, Callable[[list[list[dict]], bool], list[str]]] = {SMOLLM2: render_smollm2}
