"""The expectation suites: what a trainer-ready SFT/DPO export and a mix must satisfy.

Each function returns a list of GX expectations for one flattened table (see flatten.py);
optional checks (scores, buckets, ids) are added only when the column carries data (`Table.has`).
"""

from __future__ import annotations

from .config import ValidateParams
from .flatten import Table

SFT_ROLES = r"^(?:system,)?user,assistant(?:,user,assistant)*$"
PROMPT_ROLES = r"^(?:system,)?user(?:,assistant,user)*$"


def _gxe():
    import great_expectations.expectations as gxe

    return gxe


def _common(t: Table, p: ValidateParams, buckets: list[str]) -> list:
    gxe = _gxe()
    out = [gxe.ExpectTableRowCountToBeBetween(min_value=p.min_rows),
           gxe.ExpectColumnValuesToBeBetween(column="empty_turns", min_value=0, max_value=0)]
    if t.has.get("score"):
        out.append(gxe.ExpectColumnValuesToBeBetween(column="score", min_value=p.score_min, max_value=p.score_max))
    if t.has.get("bucket"):
        out.append(gxe.ExpectColumnValuesToBeInSet(column="bucket", value_set=sorted(buckets)))
    if p.unique_ids and t.has.get("id"):
        out.append(gxe.ExpectColumnValuesToBeUnique(column="id"))
    return out


def sft_suite(t: Table, p: ValidateParams, buckets: list[str]) -> list:
    gxe = _gxe()
    out = _common(t, p, buckets)
    out += [gxe.ExpectColumnValuesToMatchRegex(column="role_seq", regex=SFT_ROLES),
            gxe.ExpectColumnValuesToBeBetween(column="user_turns", min_value=1, max_value=p.max_user_turns),
            gxe.ExpectColumnValuesToBeBetween(column="chars", min_value=p.min_chars, max_value=p.max_chars)]
    if p.unique_conversations:
        out.append(gxe.ExpectColumnValuesToBeUnique(column="conversation"))
    return out


def dpo_suite(t: Table, p: ValidateParams, buckets: list[str]) -> list:
    gxe = _gxe()
    out = _common(t, p, buckets)
    out += [gxe.ExpectColumnValuesToMatchRegex(column="prompt_roles", regex=PROMPT_ROLES),
            gxe.ExpectColumnValuesToBeBetween(column="prompt_user_turns", min_value=1, max_value=p.max_user_turns),
            gxe.ExpectColumnValuesToBeInSet(column="chosen_roles", value_set=["assistant"]),
            gxe.ExpectColumnValuesToBeInSet(column="rejected_roles", value_set=["assistant"]),
            gxe.ExpectColumnValuesToBeInSet(column="chosen_equals_rejected", value_set=[False]),
            gxe.ExpectColumnValuesToBeBetween(column="chosen_chars", min_value=p.min_chars, max_value=p.max_chars),
            gxe.ExpectColumnValuesToBeBetween(column="rejected_chars", min_value=p.min_chars, max_value=p.max_chars)]
    return out


def mix_shares_suite(t: Table, p: ValidateParams) -> list:
    gxe = _gxe()
    return [gxe.ExpectTableRowCountToBeBetween(min_value=1),
            gxe.ExpectColumnValuesToBeBetween(column="share_gap", min_value=0, max_value=p.mix_tolerance),
            gxe.ExpectColumnValuesToBeBetween(column="shortfall", min_value=0, max_value=p.mix_tolerance)]


def mix_records_suite(t: Table, p: ValidateParams) -> list:
    gxe = _gxe()
    return [gxe.ExpectColumnValuesToBeInSet(column="in_eval_split", value_set=[False]),
            gxe.ExpectCompoundColumnsToBeUnique(column_list=["phase", "id"])]
