"""A small real bundle for the trainer tests: shipped sources ingested, shaped like data/mix, exported with
every format; and the side virtualenvs (`make test-trainers` builds them) that hold LLaMA-Factory and axolotl."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SIDE = Path(os.environ.get("DISTILLERY_TRAINER_VENVS", REPO / ".venv-trainers"))
SFT_FORMATS = ["messages", "sharegpt", "alpaca", "chatml_text"]
DPO_FORMATS = ["trl", "messages_pair", "prompt_pairs", "alpaca_pref"]
PERSONA = "You are Atlas, a concise assistant. Answer in plain English."


def side_python(name: str) -> Path:
    """The interpreter of a side virtualenv; a missing one fails with the command that builds it."""
    py = SIDE / name / "bin" / "python"
    if not py.exists():
        pytest.fail(f"{py} is missing: run `make test-trainers` (it builds the {name} virtualenv)", pytrace=False)
    return py


def run_side(name: str, args: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run a command of a side virtualenv offline; its output is shown when it fails."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               WANDB_MODE="disabled", DO_NOT_TRACK="1", AXOLOTL_DO_NOT_TRACK="1", DISABLE_VERSION_CHECK="1",
               TOKENIZERS_PARALLELISM="false", PYTHONPATH="", CUDA_VISIBLE_DEVICES="")
    env["PATH"] = f"{SIDE / name / 'bin'}:{env.get('PATH', '')}"
    r = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{' '.join(map(str, args))} exited {r.returncode}:\n{r.stdout[-3000:]}\n{r.stderr[-6000:]}"
    return r


def _pick(records: list[dict], kind: str, n: int, multiturn: int) -> list[dict]:
    """n records of a kind, `multiturn` of them with earlier turns (so history/prompt lists are exercised)."""
    rows = [r for r in records if r["kind"] == kind]
    turns = (lambda r: len(r["messages"]) > (1 if kind == "preference" else 2))
    multi = [r for r in rows if turns(r)][:multiturn]
    single = [r for r in rows if not turns(r)][: n - len(multi)]
    return multi + single


def _with_system(rec: dict) -> dict:
    msgs = [m for m in rec["messages"] if m["role"] != "system"]
    return rec | {"messages": [{"role": "system", "content": PERSONA}, *msgs]}


@pytest.fixture(scope="session")
def shipped_records(tmp_path_factory) -> dict[str, list[dict]]:
    """The first rows of three shipped sources, ingested with their params.yaml specs."""
    from distillery.sources.config import IngestParams
    from distillery.sources.ingest import ingest_source

    data = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))["ingest"]
    for spec in data["sources"].values():
        spec["path"] = str(REPO / spec["path"])
    params = IngestParams.model_validate(data)
    root = tmp_path_factory.mktemp("ingest")
    out = {}
    for name, limit in (("oasst", 120), ("hh_harmless", 40), ("gsm8k", 10)):
        spec = params.sources[name].model_copy(update={"limit": limit})
        ingest_source(name, spec, params.defaults, root / name, max_row_bytes=4 << 20)
        lines = (root / name / "records.jsonl").read_text(encoding="utf-8").splitlines()
        out[name] = [json.loads(x) for x in lines]
    return out


@pytest.fixture(scope="session")
def bundle(shipped_records, tmp_path_factory) -> Path:
    """data/mix-shaped folder (production, eval, one phase) exported with all 8 formats as .jsonl."""
    from distillery.export.config import ExportParams
    from distillery.export.run import run_export

    oa, hh, gsm = shipped_records["oasst"], shipped_records["hh_harmless"], shipped_records["gsm8k"]
    sft = _pick(oa, "sft", 10, multiturn=4)
    prefs = _pick(oa, "preference", 4, multiturn=1) + _pick(hh, "preference", 6, multiturn=4)
    # a persona system prompt on some rows, as the pipeline's system-prompted records carry
    sft = [_with_system(r) if i % 3 == 0 else r for i, r in enumerate(sft)]
    prefs = [_with_system(r) if i % 4 == 1 else r for i, r in enumerate(prefs)]
    mix = tmp_path_factory.mktemp("mix")
    files = {"production.jsonl": sft[:8] + prefs[:7], "eval.jsonl": sft[8:] + prefs[7:],
             "phases/reasoning.jsonl": gsm[:6]}
    for rel, recs in files.items():
        (mix / rel).parent.mkdir(parents=True, exist_ok=True)
        (mix / rel).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs), encoding="utf-8")
    out = mix.parent / "export"
    run_export([str(mix)], out, ExportParams(sft_formats=SFT_FORMATS, dpo_formats=DPO_FORMATS), max_line_bytes=1 << 22)
    return out


@pytest.fixture(scope="session")
def registrations(bundle) -> dict[str, dict]:
    return json.loads((bundle / "dataset_info.json").read_text(encoding="utf-8"))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
