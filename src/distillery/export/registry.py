"""How trainers find the files: LLaMA-Factory `dataset_info.json` plus copy-paste axolotl/TRL configs,
all built from the files a run actually wrote (a format that is not configured is not mentioned).

Entries follow LLaMA-Factory's data/README.md. `dpo/trl.*` is the one format LLaMA-Factory cannot
read (its converter expects `chosen`/`rejected` as one message dict, TRL's explicit-prompt format has
one-message lists): add `messages_pair` (same pairs, the shape it reads) to `export.dpo_formats`.
LLaMA-Factory picks a loader by the last file extension (json, jsonl, parquet, ...), so a `.jsonl.gz`
file is never registered; of a format written as .jsonl and .parquet, the .jsonl is.
`sft/chatml_text` is plain text: it is registered for pre-training (`stage: pt`) as
`<prefix>_pt_chatml_text`, since LLaMA-Factory's SFT stage drops every row without a response.
"""

from __future__ import annotations

from typing import Any

from .config import split_format

OPENAI_TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user",
               "assistant_tag": "assistant", "system_tag": "system"}
SHAREGPT_TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human",
                 "assistant_tag": "gpt", "system_tag": "system"}

# format -> dataset_info.json entry without file_name
LLAMAFACTORY: dict[str, dict[str, Any]] = {
    "messages": {"formatting": "sharegpt", "columns": {"messages": "messages"}, "tags": OPENAI_TAGS},
    # a system prompt is the first turn ({"from": "system"}), read through system_tag
    "sharegpt": {"formatting": "sharegpt", "columns": {"messages": "conversations"}, "tags": SHAREGPT_TAGS},
    "alpaca": {"formatting": "alpaca", "columns": {"prompt": "instruction", "query": "input",
                                                   "response": "output", "system": "system",
                                                   "history": "history"}},
    # pre-training text (stage: pt): LLaMA-Factory reads `prompt` and appends the EOS token
    "chatml_text": {"formatting": "alpaca", "columns": {"prompt": "text"}},
    "messages_pair": {"formatting": "sharegpt", "ranking": True,
                      "columns": {"messages": "messages", "chosen": "chosen", "rejected": "rejected"},
                      "tags": OPENAI_TAGS},
    "prompt_pairs": {"formatting": "alpaca", "ranking": True,
                     "columns": {"prompt": "prompt", "system": "system", "chosen": "chosen",
                                 "rejected": "rejected"}},
    "alpaca_pref": {"formatting": "alpaca", "ranking": True,
                    "columns": {"prompt": "instruction", "query": "input", "chosen": "chosen",
                                "rejected": "rejected", "system": "system", "history": "history"}},
}
# the LLaMA-Factory stage a format is for, when it is not its folder's (sft/, dpo/)
STAGE = {"chatml_text": "pt"}
NOT_REGISTERED = {
    "trl": "LLaMA-Factory reads chosen/rejected as one message, TRL's explicit-prompt rows hold one-message "
           "lists; add messages_pair to export.dpo_formats for the same pairs in the shape it reads",
}
GZIP_NOT_REGISTERED = "LLaMA-Factory reads .jsonl and .parquet files, not gzip; add the format as .jsonl or .parquet"
REGISTERED_TYPES = ("jsonl", "parquet")  # in order of preference
LOAD_ORDER = ("jsonl", "parquet", "jsonl.gz")  # which file of a format the configs point at


def parse(rel: str) -> tuple[str, str, str]:
    """`sft/alpaca.parquet` -> ("sft", "alpaca", "parquet")."""
    folder, name = rel.split("/", 1)
    fmt, ft = split_format(name)
    return folder, fmt, ft


def by_format(rows: dict[str, int]) -> dict[str, dict[str, str]]:
    """{file: rows} of one bundle -> {format: {file type: file}} for the files written."""
    out: dict[str, dict[str, str]] = {}
    for rel in sorted(rows):
        _, fmt, ft = parse(rel)
        out.setdefault(fmt, {})[ft] = rel
    return out


def dataset_name(prefix: str, bundle_dir: str, rel: str) -> str:
    """`distillery_sft_messages`, `distillery_eval_dpo_alpaca_pref`, `distillery_phases_reasoning_pt_chatml_text`."""
    folder, fmt, _ = parse(rel)
    parts = [prefix, *[p for p in bundle_dir.split("/") if p], STAGE.get(fmt, folder), fmt]
    return "_".join(p.replace("-", "_").replace(".", "_") for p in parts)


def registered_file(fmt: str, files: dict[str, str], rows: dict[str, int]) -> str | None:
    """The file of `fmt` that goes into dataset_info.json: non-empty, .jsonl before .parquet."""
    if fmt not in LLAMAFACTORY:
        return None
    for ft in REGISTERED_TYPES:
        if ft in files and rows.get(files[ft], 0) > 0:
            return files[ft]
    return None


def dataset_info(prefix: str, bundles: dict[str, dict[str, int]]) -> dict[str, Any]:
    """Entries for every non-empty file LLaMA-Factory can read. `bundles`: bundle dir -> {file: rows}."""
    info: dict[str, Any] = {}
    for bundle_dir, rows in sorted(bundles.items()):
        for fmt, files in by_format(rows).items():
            rel = registered_file(fmt, files, rows)
            if rel is None:
                continue
            path = f"{bundle_dir}/{rel}" if bundle_dir else rel
            info[dataset_name(prefix, bundle_dir, rel)] = {"file_name": path, **LLAMAFACTORY[fmt]}
    return dict(sorted(info.items()))


def not_registered(rows: dict[str, int]) -> dict[str, str]:
    """Written files of formats with no dataset_info.json entry, and why (empty files left out)."""
    out = {}
    for fmt, files in by_format(rows).items():
        if fmt in NOT_REGISTERED:
            for rel in files.values():
                out[rel] = NOT_REGISTERED[fmt]
        elif registered_file(fmt, files, rows) is None:
            for ft, rel in files.items():
                if ft == "jsonl.gz" and rows.get(rel, 0) > 0:
                    out[rel] = GZIP_NOT_REGISTERED
    return dict(sorted(out.items()))


def loader(rel: str) -> str:
    """`datasets.load_dataset` builder (and axolotl `ds_type`) for a file: json (also .jsonl.gz) or parquet."""
    return "parquet" if rel.endswith(".parquet") else "json"


def pick(rows: dict[str, int], order: tuple[str, ...]) -> tuple[str, str] | None:
    """(format, file) of the first format in `order` written in this bundle (.jsonl, then .parquet, then .gz)."""
    fmts = by_format(rows)
    for fmt in order:
        for ft in LOAD_ORDER:
            if ft in fmts.get(fmt, {}):
                return fmt, fmts[fmt][ft]
    return None


AXOLOTL_SFT_ORDER = ("messages", "sharegpt", "alpaca", "chatml_text")
AXOLOTL_DPO_ORDER = ("messages_pair", "trl", "prompt_pairs")
AXOLOTL_SFT: dict[str, list[str]] = {
    "messages": ["type: chat_template", "field_messages: messages", 'roles_to_train: ["assistant"]'],
    "sharegpt": ["type: chat_template", "field_messages: conversations",
                 "message_property_mappings: {role: from, content: value}", 'roles_to_train: ["assistant"]'],
    # axolotl's alpaca prompters read instruction/input/output/system only: multi-turn rows lose `history`
    "alpaca": ["type: alpaca_w_system.load_instruct"],
    "chatml_text": ["type: completion", "field: text"],
}
AXOLOTL_SFT_NOTE = {
    "alpaca": "# sft/alpaca: axolotl ignores `history` (earlier turns of multi-turn rows); prefer messages",
    "chatml_text": "# sft/chatml_text: trains on every token of the text (user turns too); prefer messages",
}
AXOLOTL_DPO: dict[str, list[str]] = {
    "messages_pair": ["type: chat_template.default", "field_messages: messages", "field_chosen: chosen",
                      "field_rejected: rejected"],
    "trl": ["type: chat_template.default", "field_messages: prompt", "field_chosen: chosen",
            "field_rejected: rejected"],
    "prompt_pairs": ["type: chatml.prompt_pairs"],
}
AXOLOTL_DPO_NOTE = {
    "trl": "# dpo/trl: chosen/rejected are one-message lists; axolotl versions whose chat_template.default reads\n"
           "#   only a message dict need dpo/messages_pair (add messages_pair to export.dpo_formats)",
    "prompt_pairs": "# dpo/prompt_pairs: single-turn prompts only (multi-turn pairs are not in this file)",
}


def _path(export_dir: str, rel: str, bundle: str = "") -> str:
    return "/".join(p for p in (export_dir.rstrip("/"), bundle, rel) if p)


def _entry(export_dir: str, rel: str, lines: list[str], bundle: str = "") -> list[str]:
    out = [f"  - path: {_path(export_dir, rel, bundle)}", f"    ds_type: {loader(rel)}", "    split: train"]
    return out + [f"    {x}" for x in lines]


def axolotl_yaml(export_dir: str, rows: dict[str, int], eval_rows: dict[str, int]) -> str:
    """Two YAML documents (SFT, DPO) to paste into an axolotl config, for the files written."""
    others = sorted(rows)
    sft = ["# axolotl SFT: paste into your config (chat template of the base model is applied)"]
    got = pick(rows, AXOLOTL_SFT_ORDER)
    if got is None:
        sft += ["# no SFT file written (export.sft_formats)", "datasets: []"]
    else:
        fmt, rel = got
        sft += [*filter(None, [AXOLOTL_SFT_NOTE.get(fmt)]), "datasets:", *_entry(export_dir, rel, AXOLOTL_SFT[fmt])]
        if eval_rows.get(rel):
            sft += ["test_datasets:", *_entry(export_dir, rel, AXOLOTL_SFT[fmt], "eval")]
    dpo = ["# axolotl DPO: paste into your config", "rl: dpo"]
    got_dpo = pick(rows, AXOLOTL_DPO_ORDER)
    if got_dpo is None:
        dpo += ["# no DPO file axolotl reads written (export.dpo_formats: messages_pair, trl or prompt_pairs)",
                "datasets: []"]
    else:
        fmt, rel = got_dpo
        dpo += [*filter(None, [AXOLOTL_DPO_NOTE.get(fmt)]), "datasets:", *_entry(export_dir, rel, AXOLOTL_DPO[fmt])]
    used = sorted(g[1] for g in (got, got_dpo) if g)
    rest = [r for r in others if r not in used]
    counts = "# rows: " + (", ".join(f"{r}={rows[r]}" for r in used) or "none")
    tail = ["# also written (train bundle): " + ", ".join(rest)] if rest else []
    return "\n".join([counts, *sft, "---", *dpo, *tail]) + "\n"


TRL_SFT_ORDER = ("messages", "chatml_text")
TRL_DPO_ORDER = ("trl", "prompt_pairs")


def trl_snippet(export_dir: str, rows: dict[str, int], eval_rows: dict[str, int]) -> str:
    """A Python snippet that loads the bundle for TRL's SFTTrainer and DPOTrainer (the files written)."""
    d = export_dir.rstrip("/")

    def load(var: str, rel: str) -> str:
        test = f',\n{" " * (len(var) + 40)}"test": "{d}/eval/{rel}"' if eval_rows.get(rel) else ""
        return f'{var} = load_dataset("{loader(rel)}", data_files={{"train": "{d}/{rel}"{test}}})'

    lines = ['"""Load the distillery export in TRL (generated by scripts/export.py; copy and adapt)."""',
             "from datasets import load_dataset", ""]
    got = pick(rows, TRL_SFT_ORDER)
    if got is None:
        lines += ["# SFT: no file TRL reads was written (add messages to export.sft_formats)", "sft = None"]
    else:
        fmt, rel = got
        lines += ["# SFT: conversational language modelling; the trainer applies the model's chat template."
                  if fmt == "messages" else
                  "# SFT: language modelling on the ChatML text (SFTConfig(dataset_text_field=\"text\"))",
                  load("sft", rel),
                  "# from trl import SFTConfig, SFTTrainer",
                  '# SFTTrainer(model=MODEL, args=SFTConfig(output_dir="out", max_length=MAX_LEN),',
                  '#            train_dataset=sft["train"]).train()']
    lines.append("")
    got = pick(rows, TRL_DPO_ORDER)
    if got is None:
        lines += ["# DPO: no file TRL reads was written (add trl to export.dpo_formats)", "dpo = None"]
    else:
        fmt, rel = got
        lines += ["# DPO: explicit prompt (system + turns ending with the user) and one-message chosen/rejected lists."
                  if fmt == "trl" else
                  "# DPO: standard (string) prompt/chosen/rejected, single-turn prompts only; no chat template applied",
                  load("dpo", rel),
                  "# from trl import DPOConfig, DPOTrainer",
                  '# DPOTrainer(model=MODEL, args=DPOConfig(output_dir="out", max_length=MAX_LEN),',
                  '#            train_dataset=dpo["train"], processing_class=TOKENIZER).train()']
    lines.append("# MAX_LEN: metrics/stats.json -> recommended_max_length")
    return "\n".join(lines) + "\n"
