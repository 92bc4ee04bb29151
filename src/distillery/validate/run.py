"""The validate stage: run the suites in a GX ephemeral context, write Data Docs, fail loudly.

The flattened rows go, in chunks, into an SQLite file inside the Data Docs temp folder (flatten.py),
and every suite runs on its table through GX's SQL execution engine: no suite holds its rows as a
pandas frame, so memory stays flat in the number of rows. Every suite runs (so the Data Docs show
everything); then, if any expectation failed, the stage stops with one line per failed expectation
naming the suite, the expectation, its column, how many rows failed and the first failing rows (line
number and id).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import DistilleryError, InputError
from ..core.io import atomic_dir, read_json
from ..core.parallel import OrderedPool, worker_count
from ..mix.config import MixParams
from ..mix.files import phase_files
from .config import ValidateParams
from .flatten import BOOLEAN_COLUMNS, FlatStore, Table
from .offline import make_offline
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


def _plain(v: Any, column: str = "") -> Any:
    """numpy scalars -> Python values, so messages read `1`, not `np.int64(1)`; SQLite's 0/1 of a boolean
    column -> False/True."""
    v = v.item() if hasattr(v, "item") else v
    if column in BOOLEAN_COLUMNS and isinstance(v, int) and not isinstance(v, bool):
        return bool(v)
    return v


def _describe_failure(suite: str, er: Any, examples: int, duplicate_rows: Any = None) -> str:
    """One clause naming the expectation, its column, how many rows failed and the first failing rows.
    `duplicate_rows(columns, n)` gives the first rows of a failed compound uniqueness expectation when the
    engine reports only the values (GX's SQL engine)."""
    cfg = er.expectation_config
    kw = cfg.kwargs
    columns = list(kw.get("column_list") or [])
    target = kw.get("column") or ",".join(columns) or "table"
    res = er.result or {}
    if "unexpected_count" in res:
        idx = res.get("partial_unexpected_index_list") or []
        if not idx and columns and duplicate_rows is not None:
            idx = duplicate_rows(columns, examples)
        shown = []
        for item in idx[:examples]:
            rid = item.get("id")
            if columns:
                val = ", ".join(f"{c}={_plain(item.get(c), c)!r}" for c in columns if c not in ("row", "id"))
            else:
                val = f"{target}={_plain(item.get(target), target)!r}"
            shown.append(f"row {_plain(item.get('row'))}" + (f" (id {rid}, {val})" if rid else f" ({val})"))
        return (f"{suite}: {cfg.type}({target}) failed for {res['unexpected_count']} of "
                f"{res.get('element_count')} rows, e.g. " + "; ".join(shown))
    if er.exception_info and er.exception_info.get("raised_exception"):
        return f"{suite}: {cfg.type}({target}) could not run: {er.exception_info.get('exception_message')}"
    return f"{suite}: {cfg.type}({target}) failed (observed {res.get('observed_value')!r})"


def run_suite(ctx: Any, name: str, data: Any, expectations: list, examples: int, *, source: Any = None) -> SuiteResult:
    """Run one suite. `data` is a table of the flat store (`source`: the GX SQLite data source holding it),
    or a pandas frame (a whole-frame batch: tests compare the two)."""
    import great_expectations as gx

    duplicate_rows = None
    if isinstance(data, Table):
        asset = source.add_table_asset(name, table_name=data.name)
        batch_def = asset.add_batch_definition_whole_table("all")
        rows, params = data.rows, None
        duplicate_rows = data.duplicate_rows
    else:
        asset = ctx.data_sources.add_pandas(f"{name}_source").add_dataframe_asset(name)
        batch_def = asset.add_batch_definition_whole_dataframe("all")
        rows, params = len(data), {"dataframe": data}
    suite = ctx.suites.add(gx.ExpectationSuite(name=name))
    for e in expectations:
        suite.add_expectation(e)
    vd = ctx.validation_definitions.add(gx.ValidationDefinition(name=f"{name}_validation", data=batch_def,
                                                                suite=suite))
    cp = ctx.checkpoints.add(gx.Checkpoint(
        name=f"{name}_checkpoint", validation_definitions=[vd], actions=[],   # Data Docs: once, after all suites
        result_format={"result_format": "SUMMARY", "partial_unexpected_count": examples,
                       "unexpected_index_column_names": ["row", "id"]}))
    result = cp.run(batch_parameters=params)
    out = SuiteResult(name, rows)
    for vr in result.run_results.values():
        out.evaluated += vr.statistics["evaluated_expectations"]
        out.passed += vr.statistics["successful_expectations"]
        out.failures += [_describe_failure(name, er, examples, duplicate_rows) for er in vr.results if not er.success]
    return out


def check_inputs(export_dir: Path | None, mix_dir: Path | None, p: ValidateParams) -> None:
    """One line for inputs that cannot be validated at all."""
    if export_dir is not None and not (export_dir / p.sft_file).exists() and not (export_dir / p.dpo_file).exists():
        raise InputError(f"{export_dir}: neither {p.sft_file} nor {p.dpo_file} exists")
    if mix_dir is not None and p.check_mix and not (mix_dir / "production.jsonl").exists():
        raise InputError(f"{mix_dir}: no production.jsonl (is it the mix stage's output?)")
    if export_dir is None and (mix_dir is None or not p.check_mix):
        raise InputError("validate: nothing to validate (give --export and/or --mix)")


def flatten_tables(store_path: Path, export_dir: Path | None, mix_dir: Path | None, p: ValidateParams,
                   mix: MixParams) -> list[tuple[str, Table]]:
    """(suite name, flattened table) for every suite whose input is present, written to `store_path`."""
    inputs = [f for f in (export_dir / p.sft_file, export_dir / p.dpo_file) if f.exists()] if export_dir else []
    inputs += [f for _, f in phase_files(mix_dir)] if mix_dir else []
    with OrderedPool(worker_count(p.workers, inputs)) as pool:
        return _flatten_into(FlatStore(store_path, p.chunk_rows, pool), export_dir, mix_dir, p, mix)


def _flatten_into(store: FlatStore, export_dir: Path | None, mix_dir: Path | None, p: ValidateParams,
                  mix: MixParams) -> list[tuple[str, Table]]:
    try:
        tables = []
        check_mix = mix_dir is not None and p.check_mix
        store.load_mix(mix_dir, mix, records=check_mix)
        if export_dir is not None:
            sft, dpo = export_dir / p.sft_file, export_dir / p.dpo_file
            if sft.exists():
                tables.append(("sft", store.sft(sft)))
            if dpo.exists():
                tables.append(("dpo", store.dpo(dpo)))
        store.con.execute("DROP TABLE IF EXISTS mixinfo")
        if check_mix:
            comp_path = mix_dir / "composition.json"
            comp = read_json(comp_path) if comp_path.exists() else {}
            recs = store.table("mix_records")
            tables.append(("mix_shares", store.mix_shares(comp, mix)))
            tables.append(("mix_records", recs))
        return tables
    finally:
        store.close()


SUITES = {"sft": sft_suite, "dpo": dpo_suite, "mix_shares": lambda t, p, _: mix_shares_suite(t, p),
          "mix_records": lambda t, p, _: mix_records_suite(t, p)}


def run_validate(export_dir: str | Path | None, mix_dir: str | Path | None, output: str | Path,
                 p: ValidateParams, mix: MixParams, buckets: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Run every suite and write Data Docs to `output` (replaced as a whole). Returns (metrics, failures)."""
    out = Path(output)
    export_dir, mix_dir = (Path(export_dir) if export_dir else None), (Path(mix_dir) if mix_dir else None)
    check_inputs(export_dir, mix_dir, p)
    with atomic_dir(out) as tmp:
        work = tmp / ".flat"
        work.mkdir()
        store_path = work / "flat.sqlite"
        try:
            # the tables are flattened in a forked process while this one imports GX (~7 s of CPU)
            with ProcessPoolExecutor(1, mp_context=mp.get_context("fork")) as flattener:
                flat = flattener.submit(flatten_tables, store_path, export_dir, mix_dir, p, mix)
                ctx = _context(tmp.resolve())
                tables = flat.result()
            source = ctx.data_sources.add_sqlite("flat", connection_string=f"sqlite:///{store_path.resolve()}")
            results = []
            for name, table in tables:
                exps = SUITES[name](table, p, buckets)
                log.info("validate: suite %s (%d rows, %d expectations)", name, table.rows, len(exps))
                results.append(run_suite(ctx, name, table, exps, p.examples, source=source))
            ctx.build_data_docs()   # one build of the site for every suite (a build per suite cost ~2 s each)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        make_offline(tmp)  # the CDN scripts GX links to, served from the site itself
    metrics: dict[str, Any] = {
        "success": all(not r.failures for r in results),
        "expectations_evaluated": sum(r.evaluated for r in results),
        "expectations_passed": sum(r.passed for r in results),
        "suites": {r.name: {"rows": r.rows, "evaluated": r.evaluated, "passed": r.passed,
                            "failed": r.evaluated - r.passed} for r in results},
        "data_docs": str(out / "index.html"),
    }
    return metrics, [f for r in results for f in r.failures]
