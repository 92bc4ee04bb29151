"""The validate stage: run the suites in a GX ephemeral context, write Data Docs, fail loudly.

Every suite runs (so the Data Docs show everything); then, if any expectation failed, the stage
stops with one line per failed expectation naming the suite, the expectation, its column, how
many rows failed and the first failing rows (line number and id).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..core.errors import DistilleryError, InputError
from ..core.io import atomic_dir, read_json
from ..mix.config import MixParams
from .config import ValidateParams
from .flatten import MixIndex, flatten_dpo, flatten_sft, mix_records, mix_shares
from .suites import dpo_suite, mix_records_suite, mix_shares_suite, sft_suite

log = logging.getLogger(__name__)


class ValidationFailed(DistilleryError):
    """At least one expectation failed; the message names each one and its failing rows."""

    exit_code = 4


@dataclass
class SuiteResult:
    name: str
    rows: int
    evaluated: int = 0
    passed: int = 0
    failures: list[str] = field(default_factory=list)


def _context(docs_dir: Path):
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    ctx.add_data_docs_site(site_name="distillery", site_config={
        "class_name": "SiteBuilder",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"}})
    return ctx


def _plain(v: Any) -> Any:
    """numpy scalars -> Python values, so messages read `1`, not `np.int64(1)`."""
    return v.item() if hasattr(v, "item") else v


def _describe_failure(suite: str, er: Any, examples: int) -> str:
    cfg = er.expectation_config
    kw = cfg.kwargs
    target = kw.get("column") or ",".join(kw.get("column_list") or []) or "table"
    res = er.result or {}
    if "unexpected_count" in res:
        idx = res.get("partial_unexpected_index_list") or []
        shown = []
        for item in idx[:examples]:
            rid, val = item.get("id"), _plain(item.get(target))
            shown.append(f"row {_plain(item.get('row'))}" + (f" (id {rid}, {target}={val!r})" if rid
                                                              else f" ({target}={val!r})"))
        return (f"{suite}: {cfg.type}({target}) failed for {res['unexpected_count']} of "
                f"{res.get('element_count')} rows, e.g. " + "; ".join(shown))
    if er.exception_info and er.exception_info.get("raised_exception"):
        return f"{suite}: {cfg.type}({target}) could not run: {er.exception_info.get('exception_message')}"
    return f"{suite}: {cfg.type}({target}) failed (observed {res.get('observed_value')!r})"


def run_suite(ctx: Any, name: str, df: pd.DataFrame, expectations: list, examples: int) -> SuiteResult:
    import great_expectations as gx

    asset = ctx.data_sources.add_pandas(f"{name}_source").add_dataframe_asset(name)
    batch_def = asset.add_batch_definition_whole_dataframe("all")
    suite = ctx.suites.add(gx.ExpectationSuite(name=name))
    for e in expectations:
        suite.add_expectation(e)
    vd = ctx.validation_definitions.add(gx.ValidationDefinition(name=f"{name}_validation", data=batch_def,
                                                                suite=suite))
    index_cols = [c for c in ("row", "id") if c in df.columns]
    cp = ctx.checkpoints.add(gx.Checkpoint(
        name=f"{name}_checkpoint", validation_definitions=[vd],
        actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs")],
        result_format={"result_format": "SUMMARY", "partial_unexpected_count": examples,
                       "unexpected_index_column_names": index_cols}))
    result = cp.run(batch_parameters={"dataframe": df})
    out = SuiteResult(name, len(df))
    for vr in result.run_results.values():
        out.evaluated += vr.statistics["evaluated_expectations"]
        out.passed += vr.statistics["successful_expectations"]
        out.failures += [_describe_failure(name, er, examples) for er in vr.results if not er.success]
    return out


def build_frames(export_dir: Path | None, mix_dir: Path | None, p: ValidateParams, mix: MixParams,
                 buckets: list[str]) -> list[tuple[str, pd.DataFrame, list]]:
    """(suite name, flattened frame, expectations) for every suite whose input is present."""
    frames = []
    index = MixIndex(mix_dir)
    if export_dir is not None:
        sft, dpo = export_dir / p.sft_file, export_dir / p.dpo_file
        if not sft.exists() and not dpo.exists():
            raise InputError(f"{export_dir}: neither {p.sft_file} nor {p.dpo_file} exists")
        if sft.exists():
            df = flatten_sft(sft, index)
            frames.append(("sft", df, sft_suite(df, p, buckets)))
        if dpo.exists():
            df = flatten_dpo(dpo, index)
            frames.append(("dpo", df, dpo_suite(df, p, buckets)))
    if mix_dir is not None and p.check_mix:
        if not (mix_dir / "production.jsonl").exists():
            raise InputError(f"{mix_dir}: no production.jsonl (is it the mix stage's output?)")
        comp_path = mix_dir / "composition.json"
        comp = read_json(comp_path) if comp_path.exists() else {}
        recs = mix_records(mix_dir, mix)
        shares = mix_shares(recs, comp, mix)
        frames.append(("mix_shares", shares, mix_shares_suite(shares, p)))
        frames.append(("mix_records", recs, mix_records_suite(recs, p)))
    if not frames:
        raise InputError("validate: nothing to validate (give --export and/or --mix)")
    return frames


def run_validate(export_dir: str | Path | None, mix_dir: str | Path | None, output: str | Path,
                 p: ValidateParams, mix: MixParams, buckets: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Run every suite and write Data Docs to `output` (replaced as a whole). Returns (metrics, failures)."""
    frames = build_frames(Path(export_dir) if export_dir else None, Path(mix_dir) if mix_dir else None,
                          p, mix, buckets)
    out = Path(output)
    with atomic_dir(out) as tmp:
        ctx = _context(tmp.resolve())
        results = []
        for name, df, exps in frames:
            log.info("validate: suite %s (%d rows, %d expectations)", name, len(df), len(exps))
            results.append(run_suite(ctx, name, df, exps, p.examples))
    metrics: dict[str, Any] = {
        "success": all(not r.failures for r in results),
        "expectations_evaluated": sum(r.evaluated for r in results),
        "expectations_passed": sum(r.passed for r in results),
        "suites": {r.name: {"rows": r.rows, "evaluated": r.evaluated, "passed": r.passed,
                            "failed": r.evaluated - r.passed} for r in results},
        "data_docs": str(out / "index.html"),
    }
    return metrics, [f for r in results for f in r.failures]
