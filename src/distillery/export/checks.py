"""Why a record cannot be exported (a reason code), and the system-prompt injection before it.

Trainers skip or crash on what these catch (LLaMA-Factory drops non-string outputs, TRL's template
fails on a prompt ending with the assistant), so the export quarantines them with a reason instead.
"""

from __future__ import annotations

from ..core.records import check_record, check_roles


def _message_problem(m, where: str) -> str | None:
    if not isinstance(m, dict):
        return f"{where}_not_a_message"
    if not isinstance(m.get("role"), str):
        return f"{where}_missing_role"
    if not isinstance(m.get("content"), str):
        return f"{where}_content_not_string"
    if not m["content"].strip():
        return f"{where}_empty_content"
    return None


def export_problem(rec: dict, keep_id: bool = True) -> str | None:
    """None when the record can be exported, else a reason code (first: is it of the record model)."""
    invalid = check_record(rec)
    if invalid is not None:
        return invalid.reason
    kind = rec.get("kind")
    if kind not in ("sft", "preference"):
        return "unknown_kind"
    if keep_id and not isinstance(rec.get("id"), str):
        return "missing_id"
    msgs = rec.get("messages")
    if not isinstance(msgs, list) or not msgs:
        return "empty_conversation"
    for m in msgs:
        if (p := _message_problem(m, "message")):
            return p
    if kind == "preference":
        for name in ("chosen", "rejected"):
            if rec.get(name) is None:
                return f"missing_{name}"
            if (p := _message_problem(rec[name], name)):
                return p
    reason = check_roles(kind, msgs, rec.get("chosen"), rec.get("rejected"))
    if reason:
        return reason
    if kind == "preference" and rec["chosen"]["content"].strip() == rec["rejected"]["content"].strip():
        return "chosen_equals_rejected"
    return None


def with_system_prompt(rec: dict, system_prompt: str, mode: str) -> dict:
    """The record with `system_prompt` as its first message (only where missing, or always)."""
    if not system_prompt:
        return rec
    msgs = rec.get("messages")
    if not isinstance(msgs, list) or not msgs or not isinstance(msgs[0], dict):
        return rec
    has = msgs[0].get("role") == "system"
    if has and mode == "if_missing":
        return rec
    body = msgs[1:] if has else msgs
    return {**rec, "messages": [{"role": "system", "content": system_prompt}, *body]}
