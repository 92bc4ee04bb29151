"""Params of the Great Expectations validation stage (`validate`). Pydantic only: cheap to import."""

from __future__ import annotations

from pydantic import Field

from ..core.params import Section


class ValidateParams(Section):
    """What the SFT, DPO and mix suites expect. A failed expectation fails the stage."""

    sft_file: str = Field("sft/messages.jsonl", description="SFT file below --export ({messages} rows)")
    dpo_file: str = Field("dpo/trl.jsonl", description="DPO file below --export ({prompt, chosen, rejected} rows)")
    min_rows: int = Field(1, ge=0, description="each present export file must have at least this many rows")
    max_user_turns: int = Field(20, gt=0, description="most user turns in a conversation / DPO prompt")
    min_chars: int = Field(1, ge=0, description="shortest allowed conversation / answer, in characters")
    max_chars: int = Field(200_000, gt=0, description="longest allowed conversation / answer, in characters")
    score_min: float = Field(0.0, description="judge overall scores (from the mix records) must lie in "
                                              "[score_min, score_max] when present")
    score_max: float = Field(10.0)
    unique_ids: bool = Field(True, description="every exported id is unique")
    unique_conversations: bool = Field(True, description="no two SFT rows are the same conversation")
    mix_tolerance: float = Field(0.05, ge=0, le=1, description=(
        "allowed gap between a bucket's realised share and its manifest weight (renormalised over the buckets "
        "that were not short), and allowed shortfall below min(target, available), as a fraction of the phase"))
    check_mix: bool = Field(True, description="run the mix suite when --mix is given")
    examples: int = Field(5, gt=0, description="failing examples (row, id) named per failed expectation")
    chunk_rows: int = Field(10_000, gt=0, description=(
        "flattened rows inserted into the on-disk table at a time (memory is this many rows, not the file; "
        "10,000 rather than 50,000: 33 MB less at 1.2M records, no slower)"))
    workers: int = Field(0, ge=0, description="processes parsing and flattening lines (0 = all cores; inputs under "
                                              "2 MB in one)")
    # score_min <= score_max and min_chars <= max_chars: checked by Section for every min/max pair
