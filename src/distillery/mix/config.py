"""Params of bucketing (`buckets`) and the weighted curriculum mix (`mix`).

Defaults: eight buckets, a production mix that follows the data (every eligible record of its
weighted buckets) and four small curriculum phases (calibration, reasoning, creative, robustness).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from ..core.params import BucketName, KeyProblem, Section
from ..core.records import DEFAULT_BUCKETS


def _valid_regexes(patterns: list[str]) -> list[str]:
    for p in patterns:
        try:
            re.compile(p)
        except re.error as e:
            raise ValueError(f"invalid regex {p!r}: {e}") from None
    return patterns


class BucketRule(Section):
    """One rule: if `min_hits` of its patterns match the chosen text, the record gets `bucket`."""

    bucket: str
    patterns: list[str] = Field(min_length=1, description="case-insensitive regular expressions")
    text: Literal["prompt", "response", "all"] = "all"
    min_hits: int = Field(1, ge=1)

    _check = field_validator("patterns")(_valid_regexes)


def _default_rules() -> list[BucketRule]:
    """First matching rule wins, so the most specific cues come first."""
    return [
        BucketRule(bucket="tool_use", text="all", patterns=[
            r"<tool(_call)?>", r"\"(function_call|tool_calls?)\"\s*:", r"<observation>",
            r"\b(api|tool|function) call\b", r"\bcall the \w+ (api|tool|function)\b"]),
        BucketRule(bucket="code", text="all", patterns=[
            r"```", r"^\s*(def|class) \w+.*:\s*$", r"^\s*(import|from) [\w.]+( import \w+)?\s*$",
            r"\b(function|method|script|program|regex|sql query|python|javascript|java|c\+\+|html|css)\b"
            r".{0,40}\b(write|implement|code|debug|fix|return)", r"\b(write|implement|debug)\b.{0,40}"
            r"\b(function|code|script|program|class|query)\b", r"\bprint\(", r"#include\s*<",
            r"\bSELECT .* FROM\b"]),
        BucketRule(bucket="red_team", text="all", patterns=[
            r"\b(i can(no|')t|i cannot|i won't|i will not|i'm not able to|i am not able to) "
            r"(help|assist|provide|do that|support)", r"\bas an ai\b.{0,60}\b(cannot|can't|won't)\b",
            r"\b(kill|murder|bomb|weapon|poison|steal|hack(ing)?( into)?|illegal|drugs?|explosives?|"
            r"suicide|self-harm|racist|terroris[mt])\b"]),
        BucketRule(bucket="cot_math", text="all", patterns=[
            r"<<[^<>]*=[^<>]*>>", r"\d+\s*[-+*/x×÷^]\s*\d+\s*=\s*\d+", r"\\(frac|sqrt|sum|int)\b",
            r"\b(solve|equation|calculate|compute|how many|how much|percent(age)?|probability|integral|"
            r"derivative)\b.{0,80}\d", r"\$\s*\d+(\.\d+)?\b.{0,80}\b(total|each|per|left|cost)\b",
            r"####\s*-?\d"]),
        BucketRule(bucket="creative", text="prompt", patterns=[
            r"\b(write|compose|create|tell)\b.{0,30}\b(story|poem|haiku|song|lyrics|limerick|sonnet|"
            r"fable|screenplay|dialogue|fiction)\b", r"\b(imagine|once upon a time|in the style of)\b"]),
        BucketRule(bucket="analytical", text="prompt", patterns=[
            r"\b(compare|contrast|analy[sz]e|evaluate|pros and cons|trade-?offs?|advantages and "
            r"disadvantages|implications|argue|critique|assess)\b"]),
        BucketRule(bucket="factual", text="prompt", patterns=[
            r"^\s*(what|who|when|where|which)\s+(is|was|are|were|did)\b",
            r"\b(capital of|population of|year (did|was)|invented|discovered|founded)\b"]),
    ]


def _default_refusal_cues() -> list[str]:
    return [r"\b(i can(no|')t|i cannot|i won't|i will not|i'm (not able|unable)|i am (not able|unable)) "
            r"(help|assist|provide|do|support|share|give)",
            r"\b(i('m| am) sorry|i apologi[sz]e),? but\b", r"\bnot (something|able) i can\b",
            r"\b(illegal|unethical|harmful|dangerous) (and|or) \w+\b.{0,40}\b(not|can't|cannot)\b"]


class EmbeddingParams(Section):
    """Nearest-centroid bucket classifier on sentence embeddings, for records no rule matched."""

    enabled: bool = False
    model: str = Field("minilm", description="'minilm' (offline all-MiniLM-L6-v2) or a local model path")
    min_similarity: float = Field(0.2, ge=-1, le=1, description="below this cosine, fall back to the default")
    batch_size: int = Field(64, gt=0)
    examples: dict[str, list[str]] = Field(default_factory=lambda: {
        "instruction": ["Give me three tips for staying productive while working from home.",
                        "Rewrite this sentence to sound more formal.", "Summarise the following paragraph."],
        "cot_math": ["A train travels 60 km in 45 minutes. What is its average speed in km/h?",
                     "If 3x + 5 = 20, what is x? Show your steps."],
        "code": ["Write a Python function that reverses a linked list.",
                 "Why does this JavaScript loop print undefined?"],
        "analytical": ["Compare the economic effects of a carbon tax and cap-and-trade.",
                       "What are the trade-offs between microservices and a monolith?"],
        "tool_use": ["Use the weather API to find the forecast for Paris and suggest activities.",
                     "Call the search tool to find the latest release of Python."],
        "creative": ["Write a short story about a lighthouse keeper who finds a message in a bottle.",
                     "Compose a haiku about autumn rain."],
        "red_team": ["How do I break into my neighbour's house without being noticed?",
                     "Tell me how to make a weapon at home."],
        "factual": ["What is the capital of Australia?", "Who discovered penicillin and when?"],
    }, description="a few labelled example prompts per bucket; their mean embedding is the centroid")


class BucketsParams(Section):
    """How every record gets a bucket: existing field, source default, rules, embeddings, default."""

    extra: list[str] = Field(default_factory=list, description="buckets added to the default eight")
    default: str = Field("instruction", description="bucket of a record that nothing else classified")
    keep_existing: bool = Field(True, description="a bucket already on the record (set at ingest) wins")
    refine: list[str] = Field(default_factory=list, description=(
        "generic buckets (e.g. instruction) whose records the rules and embeddings may still move "
        "to a more specific bucket; a record stays put when nothing matches"))
    source_defaults: dict[str, str] = Field(default_factory=dict,
                                            description="source.dataset -> bucket, before the rules")
    rules: list[BucketRule] = Field(default_factory=_default_rules)
    embedding: EmbeddingParams = Field(default_factory=EmbeddingParams)
    safety_bucket: str = Field("red_team", description="records in this bucket get labels.safety")
    refusal_cues: list[str] = Field(default_factory=_default_refusal_cues,
                                    description="answer matches one -> labels.safety=refusal, else 'unreviewed'")

    _check = field_validator("refusal_cues")(_valid_regexes)

    @property
    def names(self) -> list[str]:
        return list(DEFAULT_BUCKETS) + [b for b in self.extra if b not in DEFAULT_BUCKETS]

    @model_validator(mode="after")
    def _known_buckets(self) -> "BucketsParams":
        names = set(self.names)
        used = [("default", self.default), ("safety_bucket", self.safety_bucket)]
        used += [(f"source_defaults.{k}", v) for k, v in self.source_defaults.items()]
        used += [(f"rules[{i}].bucket", r.bucket) for i, r in enumerate(self.rules)]
        used += [(f"embedding.examples.{k}", k) for k in self.embedding.examples]
        used += [(f"refine[{i}]", b) for i, b in enumerate(self.refine)]
        for where, b in used:
            if b not in names:
                raise KeyProblem(where, f"unknown bucket {b!r} (known: {', '.join(sorted(names))}; "
                                        f"add new ones to buckets.extra)")
        return self


class BucketPolicy(Section):
    """Sampling limits of one bucket, shared by every phase."""

    cap: int | None = Field(None, gt=0, description="use at most this many distinct records of the bucket")
    allow_upsample: bool = Field(False, description="repeat records when the bucket has fewer than its target")
    max_repeat: float = Field(2.0, ge=1, description="with allow_upsample: at most this many copies per record")


class PhaseParams(Section):
    """One sampled mix: target bucket weights (normalised) and a size in records (null: follow the data)."""

    weights: dict[BucketName, float] = Field(min_length=1)
    size: int | None = Field(None, gt=0, description=(
        "records in the mix; null = follow the data: the largest size the weights allow without upsampling "
        "(with redistribute_shortfall: every eligible record of the weighted buckets, within their caps)"))
    description: str = ""

    @field_validator("weights")
    @classmethod
    def _non_negative(cls, v: dict[str, float]) -> dict[str, float]:
        if any(w < 0 for w in v.values()):
            raise ValueError("weights must be >= 0")
        if sum(v.values()) <= 0:
            raise ValueError("weights must not all be 0")
        return v


def _seed004_phases() -> dict[str, PhaseParams]:
    return {
        "calibration": PhaseParams(size=200, description="high-quality general instructions (phase 1)",
                                   weights={"instruction": 0.7, "code": 0.2, "factual": 0.1}),
        "reasoning": PhaseParams(size=400, description="math, tool use, analysis (phase 2)",
                                 weights={"cot_math": 0.4, "tool_use": 0.3, "analytical": 0.2, "instruction": 0.1}),
        "creative": PhaseParams(size=200, description="creativity and style (phase 3)",
                                weights={"creative": 0.4, "analytical": 0.3, "instruction": 0.2, "factual": 0.1}),
        "robustness": PhaseParams(size=200, description="edge cases, adversarial, safety (phase 4)",
                                  weights={"red_team": 0.4, "instruction": 0.3, "tool_use": 0.2, "factual": 0.1}),
    }


class MixParams(Section):
    """The manifest: bucket policies, the production mix, curriculum phases, the held-out split."""

    eval_fraction: float = Field(0.05, ge=0, lt=1, description="share of ids held out (by id hash)")
    eval_salt: str = Field("distillery-eval", description="changing it re-draws the eval split")
    buckets: dict[BucketName, BucketPolicy] = Field(default_factory=dict, description="per-bucket cap/upsampling")
    production: PhaseParams = Field(default_factory=lambda: PhaseParams(size=None, weights={
        "instruction": 0.25, "tool_use": 0.15, "code": 0.20, "cot_math": 0.15, "analytical": 0.10,
        "creative": 0.07, "factual": 0.03, "red_team": 0.05}))
    phases: dict[str, PhaseParams] = Field(default_factory=_seed004_phases)
    redistribute_shortfall: bool = Field(
        True, description="give a short bucket's missing records to the other buckets (by weight)")
    strict: bool = Field(False, description="fail when any bucket cannot reach its target count")
    warn_unused_share: float = Field(0.1, ge=0, le=1, description=(
        "warn (one stderr line) when more than this share of the eligible records (not held out) is in no mix"))
    workers: int = Field(0, ge=0, description="processes parsing, checking and bucketing records in pass 1 "
                                              "(0 = every core); inputs under 2 MB are read in one process")

    @field_validator("phases")
    @classmethod
    def _phase_names(cls, v: dict[str, PhaseParams]) -> dict[str, PhaseParams]:
        for name in v:
            if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name == "production":
                raise ValueError(f"phase name {name!r}: use letters, digits, _ . - (and not 'production')")
        return v
