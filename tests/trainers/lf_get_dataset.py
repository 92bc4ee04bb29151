"""Runs inside the LLaMA-Factory virtualenv: its own `get_dataset` for each (registration, stage) named in a
JSON spec, as `llamafactory-cli train` calls it; writes the rows it kept and their token ids as JSON.

usage: python lf_get_dataset.py SPEC.json OUT.json
SPEC: {"dataset_dir", "model", "template", "pt_block", "runs": [[name, stage], ...]}; stage pt, sft or dpo.
"""

import json
import sys
import tempfile

from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
from llamafactory.hparams import get_train_args
from llamafactory.model import load_tokenizer

DATASET_STAGE = {"pt": "pt", "sft": "sft", "dpo": "rm"}  # what the dpo workflow passes to get_dataset
KEYS = ("input_ids", "labels", "chosen_input_ids", "chosen_labels", "rejected_input_ids", "rejected_labels")


def load(spec: dict, name: str, stage: str, out_dir: str) -> dict:
    model_args, data_args, training_args, _, _ = get_train_args({
        "stage": stage, "do_train": True, "model_name_or_path": spec["model"], "dataset": name,
        "dataset_dir": spec["dataset_dir"], "template": spec["template"],
        "cutoff_len": spec["pt_block"] if stage == "pt" else 4096,  # pt: the texts are packed into blocks
        "finetuning_type": "lora", "output_dir": out_dir, "overwrite_cache": True, "report_to": "none",
        "preprocessing_num_workers": None})
    tokenizer = load_tokenizer(model_args)["tokenizer"]
    template = get_template_and_fix_tokenizer(tokenizer, data_args)
    module = get_dataset(template, model_args, data_args, training_args, stage=DATASET_STAGE[stage],
                         tokenizer=tokenizer)
    ds = module["train_dataset"]
    return {"ok": True, "rows": len(ds), "examples": [{k: row[k] for k in KEYS if k in row} for row in ds]}


def main() -> None:
    spec = json.load(open(sys.argv[1], encoding="utf-8"))
    results = []
    for name, stage in spec["runs"]:
        with tempfile.TemporaryDirectory() as tmp:
            try:
                res = load(spec, name, stage, tmp)
            except Exception as e:  # the outcome is the result: a wrong stage must fail or keep no rows
                res = {"ok": False, "error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}
        results.append({"name": name, "stage": stage, **res})
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main()
