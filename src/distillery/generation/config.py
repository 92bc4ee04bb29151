"""Params sections of the generation stages: distill, synthesize (multiturn, scenarios, completion),
preferences and score. Pydantic only (cheap to import); every field has a default that runs offline
with the local SmolLM2 teacher on a small sample."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from ..core.params import BucketName, Section, TeacherName

DEFAULT_TEACHER = "local-smollm2"

DEFAULT_IDENTITY_PROMPT = (
    "You are Distillery Assistant, a helpful model fine-tuned by the user's team. "
    "You answer clearly and honestly. You are not ChatGPT, not a GPT model and not an OpenAI product."
)

# Self-claims of another vendor's identity (an identity prompt may say "NOT a GPT model or an OpenAI product").
DEFAULT_FORBIDDEN_IDENTITIES = ["ChatGPT", "GPT-4o", "GPT-4", "GPT-3.5", "GPT-3", "GPT", "OpenAI",
                                "Claude", "Anthropic", "Gemini", "Bard"]


class GenParams(Section):
    """Sampling settings sent with every request of a step (part of the lineage and the cache key)."""

    temperature: float = Field(0.7, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    max_tokens: int = Field(128, gt=0, description="answers cut here come back finish_reason=length")
    stop: list[str] = Field(default_factory=list)

    def as_gen(self) -> dict:
        out = {"temperature": self.temperature, "max_tokens": self.max_tokens}
        if self.top_p != 1.0:
            out["top_p"] = self.top_p
        if self.stop:
            out["stop"] = list(self.stop)
        return out


class IdentityParams(Section):
    """Who the fine-tuned model is: injected by DPO->SFT, enforced by the identity-leak check."""

    name: str = "Distillery Assistant"
    system_prompt: str = DEFAULT_IDENTITY_PROMPT
    forbidden: list[str] = Field(default_factory=lambda: list(DEFAULT_FORBIDDEN_IDENTITIES),
                                 description="names the answers must never claim to be or be made by")
    check: bool = True


class PilotParams(Section):
    """Per-teacher comparison on the same pilot prompts (e.g. every teacher on 100 prompts before a large run)."""

    size: int = Field(4, ge=0, description="pilot prompts (0 disables the comparison)")
    teachers: list[TeacherName] = Field(default_factory=list, description="default: every teacher in distill.teachers")
    judge: bool = True


class DistillParams(Section):
    template: str = "prompts/distill/user.j2"
    system_template: str | None = "prompts/distill/system.j2"
    teachers: dict[TeacherName, float] = Field(default_factory=lambda: {DEFAULT_TEACHER: 1.0},
                                               description="teacher name (llm.teachers) -> routing weight")
    bucket_teachers: dict[BucketName, dict[TeacherName, float]] = Field(
        default_factory=dict, description="bucket -> its own teacher weights")
    responses_per_prompt: int = Field(1, ge=1, description=">1: that many distinct teachers per prompt")
    samples_per_teacher: int = Field(1, ge=1, description="answers per routed teacher, each with its own "
                                     "sampling seed (best-of-n; feeds preferences with one teacher)")
    failover: list[TeacherName] = Field(default_factory=list, description="teachers tried in order after a failure")
    max_consecutive_failures: int = Field(5, ge=1, description="a teacher failing this often in a row is "
                                          "taken out of routing for the rest of the run")
    sample: int = Field(12, ge=0, description="prompts taken from the input (0 = all)")
    buckets: list[BucketName] = Field(default_factory=list, description="only prompts of these buckets (empty = all)")
    max_prompt_words: int = Field(300, gt=0, description="longer prompts are skipped (prompt_too_long)")
    keep_truncated: bool = False
    resample_truncated: int = Field(0, ge=0, description="a sampled answer that runs past max_tokens is asked "
                                    "again with a seed no other sample uses, up to this many times, before truncated_response")
    batch_size: int = Field(16, gt=0)
    gen: GenParams = Field(default_factory=GenParams)
    pilot: PilotParams = Field(default_factory=PilotParams)
    max_reject_rate: float | None = Field(None, ge=0, le=1, description="default project.max_reject_rate")

    @field_validator("teachers")
    @classmethod
    def _positive(cls, v: dict[str, float]) -> dict[str, float]:
        if not v:
            raise ValueError("at least one teacher is required")
        if any(w < 0 for w in v.values()) or sum(v.values()) <= 0:
            raise ValueError("weights must be >= 0 with a positive sum")
        return v


DEFAULT_PERSONAS = ["Solo developer", "ML intern", "CEO", "Enterprise architect", "Agency owner",
                    "Frustrated user", "Data scientist"]
DEFAULT_FLOWS = {
    "troubleshooting": "the user hits a problem and works through it step by step",
    "feature_exploration": "the user explores what a feature can do and how to use it",
    "clarification": "the user asks for clarification of an earlier answer",
    "follow_up": "the user follows up with a related, deeper question",
    "progressive_depth": "each question goes one level deeper than the last",
}


class MultiturnParams(Section):
    teacher: TeacherName = DEFAULT_TEACHER
    user_teacher: TeacherName | None = Field(None, description="the user simulator (default: teacher)")
    conversations: int = Field(3, ge=0)
    min_turns: int = Field(2, ge=1)
    max_turns: int = Field(3, ge=1)
    personas: list[str] = Field(default_factory=lambda: list(DEFAULT_PERSONAS))
    flows: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_FLOWS))
    topics: list[str] = Field(default_factory=lambda: [
        "fine-tuning a small language model on a custom dataset",
        "preparing and cleaning an instruction dataset",
        "evaluating a model after training"])
    bucket: BucketName = "instruction"
    user_template: str = "prompts/multiturn/user_sim.j2"
    assistant_system_template: str = "prompts/multiturn/assistant_system.j2"
    min_words: int = Field(1, ge=0, description="per turn")
    max_words: int = Field(400, gt=0, description="per turn")
    required_patterns: list[str] = Field(default_factory=list,
                                         description="regexes some assistant turn must match (e.g. 'Pro Tip')")
    persona_judge: bool = Field(False, description="ask the judge whether the user turns keep the persona")
    persona_template: str = "prompts/multiturn/persona_judge.j2"
    user_gen: GenParams = Field(default_factory=lambda: GenParams(temperature=0.9, max_tokens=48, stop=["\n"]))
    assistant_gen: GenParams = Field(default_factory=lambda: GenParams(temperature=0.7, max_tokens=96))
    resample_truncated: int = Field(0, ge=0, description="a sampled turn that runs past max_tokens is asked again "
                                    "with the next seed, up to N times (each attempt is a paid request)")
    max_reject_rate: float | None = Field(None, ge=0, le=1, description="default project.max_reject_rate")

    @model_validator(mode="after")
    def _not_empty(self) -> "MultiturnParams":
        if not self.personas or not self.flows:
            raise ValueError("personas and flows must not be empty")
        return self


DEFAULT_CATEGORIES = ["technical decision", "ethical dilemma", "creative project", "crisis response",
                      "team conflict"]
DEFAULT_TRAITS = {
    "collaborative": "frames the work as a partnership",
    "inquisitive": "asks genuine clarifying questions",
    "cautious": "weighs several perspectives and risks",
    "encouraging": "uses a supportive tone",
    "thorough": "gives detailed, contextualised advice",
}


class TraitCheckParams(Section):
    enabled: bool = True
    teacher: TeacherName | None = Field(None, description="default: score.judge.teachers")
    template: str = "prompts/scenarios/trait_judge.j2"
    min_score: float = Field(6.0, ge=1, le=10, description="a trait scored below this is missing")
    on_parse_failure: str = Field("keep", pattern="^(keep|quarantine)$")
    gen: GenParams = Field(default_factory=lambda: GenParams(temperature=0.0, max_tokens=96))


class ScenariosParams(Section):
    teacher: TeacherName = DEFAULT_TEACHER
    bucket: BucketName = "analytical"
    idea_teacher: TeacherName | None = None
    document_teacher: TeacherName | None = None
    categories: list[str] = Field(default_factory=lambda: list(DEFAULT_CATEGORIES))
    ideas_per_category: int = Field(1, ge=1)
    doc_types: list[str] = Field(default_factory=lambda: ["memo", "email", "report"])
    traits: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_TRAITS))
    idea_template: str = "prompts/scenarios/ideas.j2"
    document_template: str = "prompts/scenarios/document.j2"
    response_system_template: str = "prompts/scenarios/response_system.j2"
    response_template: str = "prompts/scenarios/response.j2"
    min_document_words: int = Field(10, ge=0)
    min_response_words: int = Field(5, ge=0)
    idea_gen: GenParams = Field(default_factory=lambda: GenParams(temperature=0.9, max_tokens=64))
    document_gen: GenParams = Field(default_factory=lambda: GenParams(temperature=0.7, max_tokens=128))
    response_gen: GenParams = Field(default_factory=lambda: GenParams(temperature=0.7, max_tokens=128))
    resample_truncated: int = Field(0, ge=0, description="a sampled response that runs past max_tokens is asked "
                                    "again with the next seed, up to N times (each attempt is a paid request)")
    trait_check: TraitCheckParams = Field(default_factory=TraitCheckParams)
    max_reject_rate: float | None = Field(None, ge=0, le=1, description="default project.max_reject_rate")


class Exemplar(Section):
    prompt: str
    completion: str


DEFAULT_EXEMPLARS = [
    {"prompt": 'The answer to "What is 2+2?" is:', "completion": "4"},
    {"prompt": "Complete this sentence: The sun rises in the", "completion": "east"},
    {"prompt": "Here is a fact about dogs:", "completion": "Dogs are loyal and friendly companions to humans."},
    {"prompt": "Write a short sentence about winter:",
     "completion": "Snow blankets the quiet landscape in pristine white."},
    {"prompt": "Explain what photosynthesis is:",
     "completion": "Photosynthesis is the process by which plants convert sunlight into energy."},
    {"prompt": "Name a primary color:", "completion": "Blue"},
]


class CompletionParams(Section):
    teacher: TeacherName = DEFAULT_TEACHER
    template: str = "prompts/completion/fewshot.j2"
    exemplars: list[Exemplar] = Field(default_factory=lambda: [Exemplar(**e) for e in DEFAULT_EXEMPLARS])
    shots: int = Field(4, ge=1, description="exemplars per prompt, rotated from the pool")
    sample: int = Field(8, ge=0, description="instructions taken from the input (0 = all)")
    max_instruction_words: int = Field(60, gt=0)
    max_answer_chars: int = Field(800, gt=0, description="run-on continuations are trimmed to this")
    copy_threshold: float = Field(0.8, gt=0, le=1, description="word-trigram containment flagged as a copy")
    min_answer_words: int = Field(1, ge=0)
    gen: GenParams = Field(default_factory=lambda: GenParams(temperature=0.7, max_tokens=64, stop=["\n\n"]))
    max_reject_rate: float | None = Field(None, ge=0, le=1, description="default project.max_reject_rate")

    @model_validator(mode="after")
    def _pool(self) -> "CompletionParams":
        if len(self.exemplars) < self.shots:
            raise ValueError(f"need at least shots={self.shots} exemplars, got {len(self.exemplars)}")
        return self


class SynthesizeParams(Section):
    multiturn: MultiturnParams = Field(default_factory=MultiturnParams)
    scenarios: ScenariosParams = Field(default_factory=ScenariosParams)
    completion: CompletionParams = Field(default_factory=CompletionParams)


DEFAULT_DIMENSIONS = {
    "helpfulness": "does the answer address what was asked",
    "accuracy": "is it factually and technically correct",
    "clarity": "is it clear and well organised",
    "completeness": "does it cover everything the request needs",
}


class JudgeParams(Section):
    """The LLM judge: a rubric of named dimensions scored 1-10 plus overall."""

    teachers: list[TeacherName] = Field(default_factory=lambda: [DEFAULT_TEACHER],
                                        description="first one that is not the record's teacher judges it")
    allow_self_judge: bool = Field(False, description="let a teacher judge its own answers")
    dimensions: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_DIMENSIONS))
    template: str = "prompts/judge/pointwise.j2"
    pairwise_template: str = "prompts/judge/pairwise.j2"
    system_template: str = "prompts/judge/system.j2"
    keep_above: float = Field(7.0, ge=0, le=10, description="records need overall > this")
    parse_retries: int = Field(1, ge=0, description="re-asks after an unparseable answer")
    on_parse_failure: str = Field("quarantine", pattern="^(keep|quarantine)$")
    guided: bool = Field(False, description="local judge teachers: decode the scores / winner under their JSON "
                                            "schema, so every answer parses (worth it with a model that can judge)")
    guided_scores: Literal["expected", "greedy"] = Field(
        "expected", description="with `guided`: each score is the probability-weighted mean over 1..10 under the "
                                "judge's distribution (G-Eval; a float, separates answers a small judge scores alike) "
                                "or the greedy integer")
    max_records: int = Field(8, ge=0, description="records without generation lineage judged at most")
    batch_size: int = Field(16, gt=0)
    gen: GenParams = Field(default_factory=lambda: GenParams(temperature=0.0, max_tokens=96))

    @field_validator("dimensions")
    @classmethod
    def _dims(cls, v: dict[str, str]) -> dict[str, str]:
        if not v:
            raise ValueError("at least one dimension is required")
        if "overall" in v:
            raise ValueError("'overall' is always scored; do not list it")
        return v


class RequiredPattern(Section):
    pattern: str
    buckets: list[BucketName] = Field(default_factory=list, description="empty = every bucket")
    stages: list[str] = Field(default_factory=list, description="only records generated by these stages")


class HeuristicParams(Section):
    min_response_words: int = Field(1, ge=0)
    max_response_words: int = Field(4000, gt=0)
    max_repeated_trigram_ratio: float = Field(0.5, gt=0, le=1, description="share of word trigrams that repeat")
    reject_truncated: bool = True
    reject_refusals: bool = True
    refusal_exempt_buckets: list[BucketName] = Field(default_factory=lambda: ["red_team"])
    reject_ai_disclaimer: bool = True
    check_code_fences: bool = True
    required: list[RequiredPattern] = Field(default_factory=list)


class ScoreParams(Section):
    heuristics: HeuristicParams = Field(default_factory=HeuristicParams)
    judge: JudgeParams = Field(default_factory=JudgeParams)
    identity: IdentityParams = Field(default_factory=IdentityParams)
    generated_stages: list[str] = Field(default_factory=lambda: ["distill", "multiturn", "scenarios",
                                                                 "completion", "preferences"])
    plots_dir: str = "metrics/plots"
    workers: int = Field(0, ge=0, description="processes reading and checking records and running the heuristics "
                                              "(0 = every core); inputs under 2 MB are read in one process")
    max_reject_rate: float | None = Field(None, ge=0, le=1, description="default project.max_reject_rate")


class DpoToSftParams(Section):
    """Identity comes from score.identity (one place for the injected prompt and the leak check)."""

    enabled: bool = True
    system_mode: str = Field("replace", pattern="^(inject|replace)$",
                             description="inject: add when missing; replace: always use the identity")


class PreferencesParams(Section):
    mode: str = Field("judge", pattern="^(judge|pairwise|teacher_rank)$")
    min_margin: float = Field(1.0, ge=0, description="judge-score (or win) gap needed; smaller = tie, dropped")
    pairs_per_prompt: int = Field(1, ge=0, description="1 = best vs worst; k = up to k pairs, widest margin "
                                                       "first; 0 = every pair of answers over min_margin")
    teacher_rank: list[TeacherName] = Field(default_factory=list, description="strongest first (mode teacher_rank)")
    dpo_to_sft: DpoToSftParams = Field(default_factory=DpoToSftParams)
    max_reject_rate: float | None = Field(None, ge=0, le=1, description="default project.max_reject_rate")
