"""--dry-run: a generation stage counts what it would send and what it would cost, calls nothing and
leaves its outputs alone."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_distill_dry_run_estimates_cost_without_calling(gen_params, server, tmp_path):
    gen_params(distill__sample=3)
    recs = tmp_path / "in" / "records.jsonl"
    recs.parent.mkdir()
    recs.write_text("".join(json.dumps({"id": f"r{i}", "kind": "sft", "source": {"dataset": "t"},
                                        "messages": [{"role": "user", "content": f"Explain topic {i} briefly."},
                                                     {"role": "assistant", "content": "ok"}]}) + "\n"
                            for i in range(5)))
    out = tmp_path / "out"
    server.reset()
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "distill.py"), "--params", "params.yaml",
                        "--input", str(recs.parent), "--output", str(out), "--dry-run"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    est = json.loads(r.stdout)
    assert est["dry_run"] is True
    assert est["totals"]["to_call"] == 3 and est["totals"]["prompt_tokens"] > 0
    assert est["teachers"]["big"]["cost_usd"] > 0 and "Traceback" not in r.stderr
    assert server.requests() == []          # nothing was called
    assert not out.exists()                 # outputs untouched
