"""Runs inside the axolotl virtualenv: `axolotl preprocess CONFIG` (its CLI function, one import for all
configs) for each config named in a JSON spec, then reads back what it prepared; writes the results as JSON.

usage: python axolotl_preprocess.py SPEC.json OUT.json      SPEC: {"configs": [[label, config.yml], ...]}
"""

import json
import sys
from pathlib import Path

KEYS = ("input_ids", "labels", "prompt", "chosen", "rejected")


def prepared(path: Path) -> list[dict]:
    """Rows of every dataset axolotl saved under dataset_prepared_path (one folder per dataset hash)."""
    from datasets import load_from_disk

    rows = []
    for d in sorted(p.parent for p in path.rglob("dataset_info.json")):
        rows += [{k: r[k] for k in KEYS if k in r} for r in load_from_disk(str(d))]
    return rows


def main() -> None:
    # imported here, not at the top: `datasets` saves through spawned workers, which re-import this script
    import yaml
    from axolotl.cli.preprocess import do_cli

    spec = json.load(open(sys.argv[1], encoding="utf-8"))
    out = sys.argv[2]
    sys.argv = sys.argv[:1]  # do_cli parses the process arguments for its own flags
    results = []
    for label, config in spec["configs"]:
        cfg = yaml.safe_load(open(config, encoding="utf-8"))
        try:
            do_cli(config=config)
            rows = prepared(Path(cfg["dataset_prepared_path"]))
            res = {"ok": bool(rows), "rows": len(rows), "examples": rows}
        except Exception as e:  # the outcome is the result
            res = {"ok": False, "error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}
        results.append({"label": label, **res})
    with open(out, "w", encoding="utf-8") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main()
