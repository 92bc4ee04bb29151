"""Dialogue shaping (`ingest.sources.NAME.dialogue`): turn lists as people wrote them -> SFT examples.

Human-human dialogue sets end wherever the people stopped (often on the user's turn), name their
speakers by id rather than role, and let one person send several messages in a row. Unshaped, such
rows fail the role checks whole (`sft_must_end_with_assistant`, `role_order`, `unknown_role`). Here
roles can come from speaker order, consecutive turns of one role can be joined, a dialogue can end
at its last assistant turn, or give one example per assistant turn.
"""

from __future__ import annotations

from typing import Iterator

from .adapters import Ctx, Draft, RowError, text_field, turns, with_system
from .config import DialogueShape

OTHER = {"user": "assistant", "assistant": "user"}


def alternate(items: list, ctx: Ctx, first_role: str) -> list[dict]:
    """Roles by speaker order: the first speaker gets `first_role`, the second the other role, and a
    third speaker is refused (two-party dialogues only). Plain-text turns, or turns without a speaker
    field, alternate by position."""
    key, text = ctx.fields["role"], ctx.fields["content"]
    by_speaker = all(isinstance(t, dict) and key in t for t in items)
    speakers: dict[str, str] = {}
    out = []
    for i, t in enumerate(items):
        if isinstance(t, str):
            content = t
        elif isinstance(t, dict):
            content = text_field(t, text)
        else:
            raise RowError("wrong_type", f"turn {i} should be an object or text, got {type(t).__name__}")
        if not by_speaker:
            role = first_role if i % 2 == 0 else OTHER[first_role]
        else:
            who = t[key]
            if not isinstance(who, (str, int)) or isinstance(who, bool):
                raise RowError("wrong_type", f"turn {i}: speaker should be text or an id, got {type(who).__name__}")
            who = str(who)
            if who not in speakers:
                if len(speakers) == 2:
                    raise RowError("unknown_role", f"turn {i}: a third speaker {who!r} (dialogue.alternate "
                                                   f"takes two-party dialogues; map speakers in `roles` instead)")
                speakers[who] = OTHER[first_role] if speakers else first_role
            role = speakers[who]
        out.append({"role": role, "content": content})
    return out


def merge(messages: list[dict]) -> list[dict]:
    """Consecutive turns of one role become one turn, a blank line between them."""
    out: list[dict] = []
    for m in messages:
        if out and out[-1]["role"] == m["role"]:
            out[-1] = {"role": m["role"], "content": f"{out[-1]['content'].rstrip()}\n\n{m['content'].lstrip()}"}
        else:
            out.append(dict(m))
    return out


def trim(messages: list[dict]) -> list[dict]:
    """From the first user turn (a leading system turn kept) to the last assistant turn."""
    head = [m for m in messages[:1] if m["role"] == "system"]
    body = messages[len(head):]
    start = next((i for i, m in enumerate(body) if m["role"] == "user"), None)
    end = next((i for i in range(len(body) - 1, -1, -1) if body[i]["role"] == "assistant"), None)
    if start is None or end is None or end < start:
        raise RowError("no_assistant_turn", "no assistant turn follows a user turn "
                                            "(roles: " + ",".join(m["role"] for m in messages) + ")")
    return head + body[start:end + 1]


def shaped(row: dict, items: list, ctx: Ctx, shape: DialogueShape) -> Iterator[Draft]:
    """The row's turn list as one trimmed SFT draft, or one draft per assistant turn (`split`)."""
    messages = alternate(items, ctx, shape.first_role) if shape.alternate else turns(items, ctx)
    messages = with_system(row, ctx, messages)
    if shape.merge_consecutive:
        messages = merge(messages)
    if not (shape.trim or shape.split):
        yield Draft("0", "sft", messages)
        return
    kept = trim(messages)
    if not shape.split:
        d = Draft("0", "sft", kept)
        if len(kept) < len(messages):
            d.lineage["dialogue"] = {"turns": len(kept), "of": len(messages)}
        yield d
        return
    for i, m in enumerate(kept):
        if m["role"] == "assistant":
            d = Draft(f"turn:{i}", "sft", kept[:i + 1])
            d.lineage["dialogue"] = {"turns": i + 1, "of": len(messages)}
            yield d
