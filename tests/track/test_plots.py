"""The top-level `plots:` of dvc.yaml render with `dvc plots show` on small hand-made plot data."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent

SAMPLES = {
    "metrics/plots/judge_scores.csv": "score,accuracy,clarity,completeness,helpfulness,overall\n"
                                      + "".join(f"{s},{s},{s},{s},{s},{11 - s}\n" for s in range(1, 11)),
    "metrics/plots/dedup_similarity.csv": "similarity,similarity_hi,pairs,duplicates\n0.5,0.55,7,0\n0.95,1.0,3,3\n",
    "metrics/plots/mix_composition.json": json.dumps([
        {"label": "production / code / target", "phase": "production", "bucket": "code", "series": "target",
         "share": 0.3, "count": 30},
        {"label": "production / code / realised", "phase": "production", "bucket": "code", "series": "realised",
         "share": 0.25, "count": 25}]),
    "metrics/plots/stats_tokens_sft.json": json.dumps([{"tokens": 0, "count": 3}, {"tokens": 64, "count": 5}]),
    "metrics/plots/stats_tokens_dpo_chosen.json": json.dumps([{"tokens": 0, "count": 1}]),
    "metrics/plots/stats_tokens_dpo_rejected.json": json.dumps([{"tokens": 64, "count": 2}]),
    "metrics/plots/train_loss.csv": "step,phase,loss\n1,sft,2.5\n2,sft,2.1\n1,dpo,0.69\n",
    "metrics/plots/cost_per_teacher.csv": "teacher,model,stages,requests,cached,prompt_tokens,completion_tokens,"
                                          "cost_usd\ngpt,gpt-4o-mini,distill,3,0,100,50,0.0001\n",
}


@pytest.mark.slow
def test_every_top_level_plot_renders(tmp_path):
    plots = yaml.safe_load((REPO / "dvc.yaml").read_text())["plots"]
    files = set()
    for entry in plots:
        (pid, spec), = entry.items()
        template = spec.get("template", "linear")
        if template.endswith(".json"):
            assert (REPO / template).is_file(), f"{pid}: template {template} missing"
            dest = tmp_path / template
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text((REPO / template).read_text())
        files.update(spec["y"])
    assert files <= set(SAMPLES), f"plot files without sample data: {sorted(files - set(SAMPLES))}"
    for rel, text in SAMPLES.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"plots": plots}, sort_keys=False))
    env = dict(os.environ, DVC_NO_ANALYTICS="1")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([str(VENV_BIN / "dvc"), "init", "-q"], cwd=tmp_path, check=True, env=env)
    r = subprocess.run([str(VENV_BIN / "dvc"), "plots", "show", "--json"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    shown = json.loads(r.stdout)
    assert not shown.get("errors"), shown.get("errors")
    ids = [next(iter(e)) for e in plots]
    assert sorted(shown["data"]) == sorted(ids)
    for pid in ids:
        spec = shown["data"][pid][0]["content"]
        assert spec["data"]["values"], f"{pid}: no data points"
        assert "<DVC_METRIC" not in json.dumps(spec), f"{pid}: unfilled template anchor"
    judge = shown["data"]["judge_scores"][0]["content"]
    assert {v["field"] for v in judge["data"]["values"]} == {"overall", "helpfulness", "accuracy", "clarity",
                                                            "completeness"}
    assert "toNumber(datum['score'])" in json.dumps(judge["transform"])   # bins sort 1..10, not "1","10","2"
