"""distill: answers from teacher models for prompts of ingested records.

Each prompt goes to the teacher(s) chosen by deterministic weighted routing (hash of record id and
seed; per-bucket weights optional). A request that fails after the engine's own retries fails over
to the next teacher; a teacher failing `max_consecutive_failures` times in a row leaves the routing
for the rest of the run (the engine answers its later requests `teacher_down`, so a prompt with no
teacher left is still accounted for, never skipped). A pilot runs every teacher on the same few
prompts and compares count, failure rate, mean judge score and cost (comparison.json).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..core.io import write_json
from ..core.quarantine import StageCounter
from ..core.records import prompt_messages, stable_id
from ..llm import ChatRequest, ChatResult
from .common import gen_with_seed, hash_sample, list_cost, read_records, sample_gen
from .config import DistillParams
from .routing import route, weights_for
from .step import RedrawnStep, Reject, Resend, Sink, Step, classify, failed, is_truncated, run_step
from .templates import Template, load_template

log = logging.getLogger(__name__)
STAGE = "distill"


@dataclass
class Prompt:
    rec: dict
    messages: list[dict]       # exactly what is sent
    teachers: list[str]        # routed teachers (one answer each)


@dataclass
class Job:
    prompt: Prompt
    slot: int                  # which routed answer this is
    sample: int = 0            # which of samples_per_teacher (its own sampling seed)
    teacher: str = ""          # the teacher asked now (the routed one, then failovers)
    used: set[str] = field(default_factory=set)   # teachers assigned to this prompt (shared by its jobs)
    tried: list[str] = field(default_factory=list)
    result: Any = None
    lineage: list[dict] = field(default_factory=list)


def eligible(rec: dict, p: DistillParams) -> str | None:
    """None if the record's prompt can be distilled, else why not (counted, not quarantined)."""
    msgs = prompt_messages(rec)
    if not msgs or msgs[-1].get("role") != "user":
        return "no_user_prompt"
    if p.buckets and rec.get("bucket") not in p.buckets:
        return "bucket_not_selected"
    words = sum(len((m.get("content") or "").split()) for m in msgs)
    if words > p.max_prompt_words:
        return "prompt_too_long"
    if not (msgs[-1].get("content") or "").strip():
        return "empty_prompt"
    return None


def sample_records(records, p: DistillParams, seed: int, skipped: Counter) -> list[dict]:
    return hash_sample(records, p.sample, seed, "distill-sample", lambda r: eligible(r, p), skipped)


def build_messages(rec: dict, user_tpl: Template, system_tpl: Template | None) -> list[dict]:
    """The prompt as sent: the record's own system prompt or the rendered system template, then the
    conversation with its last user message rendered through the user template."""
    msgs = [dict(m) for m in prompt_messages(rec)]
    has_system = msgs and msgs[0]["role"] == "system"
    msgs[-1] = {"role": "user", "content": user_tpl.render(instruction=msgs[-1]["content"], bucket=rec.get("bucket"))}
    if not has_system and system_tpl is not None:
        sys_txt = system_tpl.render(bucket=rec.get("bucket"), record=rec)
        if sys_txt:
            msgs.insert(0, {"role": "system", "content": sys_txt})
    return msgs


class Router:
    """Routes prompts and fails over; remembers which teachers keep failing."""

    def __init__(self, p: DistillParams, seed: int, on_down: Callable[[str, str], None] | None = None):
        self.p = p
        self.seed = seed
        self.streak: Counter[str] = Counter()
        self.down: set[str] = set()
        self.on_down = on_down

    def initial(self, rec: dict) -> list[str]:
        w = weights_for(rec.get("bucket"), self.p.teachers, self.p.bucket_teachers)
        return route(rec["id"], self.seed, w, k=self.p.responses_per_prompt)

    def first_choice(self, rec: dict, routed: str, taken: set[str]) -> str | None:
        """The routed teacher unless it is down, else the failover for it."""
        return routed if routed not in self.down else self.next(rec, [routed], taken)

    def next(self, rec: dict, tried: list[str], taken: set[str]) -> str | None:
        """The failover teacher: the first in `failover` not yet tried, else the next by routing."""
        skip = set(tried) | self.down | taken
        for t in self.p.failover:
            if t not in skip:
                return t
        w = weights_for(rec.get("bucket"), self.p.teachers, self.p.bucket_teachers)
        nxt = route(rec["id"], self.seed, w, k=1, exclude=skip)
        return nxt[0] if nxt else None

    def record(self, teacher: str, ok: bool) -> None:
        if ok:
            self.streak[teacher] = 0
            return
        self.streak[teacher] += 1
        if self.streak[teacher] >= self.p.max_consecutive_failures and teacher not in self.down:
            self.down.add(teacher)
            if self.on_down is not None:
                self.on_down(teacher, f"failed {self.streak[teacher]} times in a row (distill.max_consecutive_failures)")
            log.warning("distill: teacher %s failed %d times in a row; failing over for the rest of the run",
                        teacher, self.streak[teacher])


class DistillStep(RedrawnStep[Job]):
    """Ask the routed teacher; a failed request (not a truncation) fails over to the next teacher
    (`Resend`); a sampled answer that loops past max_tokens is redrawn (`resample_truncated`, seeds
    strided past the other samples); the last answer is classified: teacher_failed, empty_response,
    truncated_response."""

    stage = STAGE

    def __init__(self, p: DistillParams, gen: dict, templates: tuple[Template | None, ...], llm: Any,
                 router: Router, per_teacher: dict[str, Counter]):
        self.p, self.gen, self.templates, self.llm = p, gen, templates, llm
        self.router, self.per_teacher = router, per_teacher
        self.redraws = 0 if p.keep_truncated else p.resample_truncated   # kept truncated: nothing to redraw
        self.redraw_stride = p.samples_per_teacher

    def prompt(self, job: Job) -> ChatRequest:
        return ChatRequest(teacher=job.teacher, messages=job.prompt.messages, gen=sample_gen(self.gen, job.sample),
                           tag=job_tag(job))

    def parse(self, job: Job, results: list[ChatResult]) -> Job | Reject | Resend:
        res, t = results[-1], job.teacher
        if not job.tried or job.tried[-1] != t:
            job.tried.append(t)
        bad = failed(res)
        if res.error != "budget_refused":  # the budget, not the teacher, said no
            self.router.record(t, not bad)
        self.per_teacher[t]["requests"] += 1
        again = self.redraw(job, results)
        if again is not None:
            self.per_teacher[t]["redrawn"] += 1
            return again
        if bad:
            self.per_teacher[t]["failed"] += 1
            nxt = self.router.next(job.prompt.rec, job.tried, job.used)
            if nxt is not None:
                self.per_teacher[t]["failed_over"] += 1
                job.used.add(nxt)
                job.teacher = nxt
                return Resend.of(self.prompt(job))
        job.result = res
        rej = classify(res, truncated=None)
        if rej is not None:
            return Reject(rej.reason, rej.detail, {"tried": list(job.tried)} if rej.reason == "teacher_failed" else {})
        if is_truncated(res) and not self.p.keep_truncated:
            self.per_teacher[res.teacher]["truncated"] += 1
            return Reject("truncated_response", f"hit max_tokens={self.p.gen.max_tokens}")
        self.per_teacher[res.teacher]["records"] += 1
        return job

    def lineage_extra(self, job: Job) -> dict[str, Any]:
        """Earlier teachers that failed (`failover_from`) and which best-of-n sample this is; the
        lineage itself (one entry per draw of the last teacher asked) is `RedrawnStep`'s."""
        extra: dict[str, Any] = {"failover_from": job.tried[:-1]} if len(job.tried) > 1 else {}
        if self.p.samples_per_teacher > 1:
            extra["sample"] = job.sample
        return extra


def _jobs(batch: list[Prompt], router: Router, samples: int) -> list[Job]:
    """Each prompt's answer slots: the routed teacher (or its failover when down), `samples` jobs each."""
    jobs: list[Job] = []
    for pr in batch:
        used: set[str] = set()   # teachers assigned per prompt (distinct answers)
        for slot, t in enumerate(pr.teachers):
            first = router.first_choice(pr.rec, t, used)
            if first is None:  # every teacher down: the engine answers teacher_down (counted)
                first = t
            used.add(first)
            jobs.extend(Job(pr, slot, s, first, used) for s in range(samples))
    return jobs


def run_distill(params: Any, inputs: list[str | Path], output: str | Path, engine: Any, *,
                counter: StageCounter | None = None) -> dict[str, Any]:
    """Run the stage; writes output/{records,quarantine}.jsonl and comparison.json; returns metrics."""
    p: DistillParams = params.distill
    seed = params.project.seed
    out = Path(output)
    user_tpl = load_template(p.template, "distill.template")
    sys_tpl = load_template(p.system_template, "distill.system_template") if p.system_template else None
    for t in list(p.teachers) + p.failover + [t for w in p.bucket_teachers.values() for t in w]:
        params.llm.teacher(t)  # unknown teacher -> one line before any call
    gen = gen_with_seed(p.gen.as_gen(), seed)
    counter = counter if counter is not None else StageCounter()
    skipped: Counter[str] = Counter()
    per_teacher: dict[str, Counter] = defaultdict(Counter)
    router = Router(p, seed, on_down=getattr(engine, "mark_down", None))
    step = DistillStep(p, gen, (sys_tpl, user_tpl), params.llm, router, per_teacher)

    with Sink(out, STAGE, counter) as sink:
        scanned = StageCounter()
        sample = sample_records(read_records(inputs, sink.quarantine, scanned, params.project.max_line_bytes),
                                p, seed, skipped)
        prompts = [Prompt(r, build_messages(r, user_tpl, sys_tpl), router.initial(r)) for r in sample]
        for start in range(0, len(prompts), p.batch_size):
            for job, verdict in run_step(step, _jobs(prompts[start:start + p.batch_size], router,
                                                     p.samples_per_teacher), engine):
                sink.settle(_record(job, verdict), verdict)
    comparison = run_pilot(params, sample, engine, user_tpl, sys_tpl, gen)
    write_json(out / "comparison.json", comparison)
    metrics = counter.as_metrics()
    metrics.update({"input_records": scanned.records_in, "prompts": len(prompts),
                    "skipped": dict(sorted(skipped.items())),
                    "teachers": {t: dict(sorted(c.items())) for t, c in sorted(per_teacher.items())},
                    "teachers_down": sorted(router.down), "comparison": comparison})
    return metrics


def job_tag(job: Job) -> str:
    """The unit of work in the failed-requests file: one answer slot (and sample) of one prompt."""
    extra = f":{job.slot}.{job.sample}" if job.slot or job.sample else ""
    return f"distill:{job.prompt.rec['id']}{extra}"


def _record(job: Job, verdict: object) -> dict[str, Any]:
    """The training record of one answer: the original conversation plus the teacher's answer."""
    rec, res = job.prompt.rec, job.result
    out = {
        "id": stable_id(STAGE, rec["id"], res.teacher, *([job.sample] if job.sample else [])),
        "kind": "sft",
        "messages": [dict(m) for m in prompt_messages(rec)] + [{"role": "assistant", "content": (res.text or "").strip()}],
        **({"bucket": rec["bucket"]} if rec.get("bucket") else {}),
        "source": rec.get("source") or {"dataset": "unknown"},
        "lineage": list(rec.get("lineage") or []) + job.lineage,
        "scores": {},
        "labels": {**(rec.get("labels") or {}), "prompt_id": rec["id"], "teacher": res.teacher},
    }
    unanswered = isinstance(verdict, Reject) and verdict.reason in ("teacher_failed", "empty_response")
    if is_truncated(res) and not unanswered:
        out["labels"]["truncated"] = True
    return out


@dataclass
class PilotUnit:
    teacher: str
    rec: dict
    messages: list[dict]
    gen: dict
    result: Any = None


class PilotStep(Step[PilotUnit]):
    """Every pilot teacher answers the same prompts; failures are compared, not quarantined (a failed
    pilot request is counted by the engine's accounting as `request_failed`)."""

    stage = STAGE

    def prompt(self, u: PilotUnit) -> ChatRequest:
        return ChatRequest(teacher=u.teacher, messages=u.messages, gen=u.gen, tag=f"distill:pilot:{u.rec['id']}")

    def parse(self, u: PilotUnit, results: list[ChatResult]) -> PilotUnit:
        u.result = results[-1]
        return u

    def lineage(self, u: PilotUnit, results: list[ChatResult]) -> list[dict]:
        return []

    def attach(self, u: PilotUnit, entries: list[dict]) -> None:
        return None


def run_pilot(params: Any, sample: list[dict], engine: Any, user_tpl: Template, sys_tpl: Template | None,
              gen: dict) -> dict[str, Any]:
    """Every pilot teacher answers the same first `pilot.size` prompts; the judge scores them."""
    from .judge import Judge

    p: DistillParams = params.distill
    size = min(p.pilot.size, len(sample))
    teachers = p.pilot.teachers or list(p.teachers)
    if not size:
        return {"size": 0, "teachers": {}}
    prompts = sample[:size]
    msgs = [build_messages(r, user_tpl, sys_tpl) for r in prompts]
    units = [PilotUnit(t, r, m, gen) for t in teachers for r, m in zip(prompts, msgs)]
    results = [u.result for u, _ in run_step(PilotStep(), units, engine)]
    judge = Judge(engine, params.score.judge, params.llm, params.project.seed, STAGE) if p.pilot.judge else None
    report: dict[str, Any] = {}
    for ti, t in enumerate(teachers):
        rs = results[ti * size:(ti + 1) * size]
        ok = [(r, res) for r, res in zip(prompts, rs) if res.ok and (res.text or "").strip()]
        row: dict[str, Any] = {"count": size, "ok": len(ok), "failed": size - len(ok),
                               "failure_rate": round((size - len(ok)) / size, 4),
                               "truncated": sum(1 for res in rs if res.truncated),
                               "cost_usd": round(sum(list_cost(params.llm, res) for res in rs), 8),
                               "mean_answer_words": round(sum(len((res.text or "").split()) for _, res in ok)
                                                          / len(ok), 2) if ok else 0.0}
        if judge is not None and ok:
            items = [(r["id"], prompt_messages(r)[-1]["content"], res.text, (res.teacher, res.model)) for r, res in ok]
            verdicts = judge.score(items)
            scored = [v.scores["overall"] for v in verdicts if v.scores]
            row["judged"] = len(scored)
            row["judge_failures"] = dict(sorted(Counter(v.reason for v in verdicts if not v.scores).items()))
            row["mean_judge_score"] = round(sum(scored) / len(scored), 3) if scored else None
        report[t] = row
    return {"size": size, "teachers": report}
