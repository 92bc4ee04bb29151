"""How trainers find the files: LLaMA-Factory `dataset_info.json` plus copy-paste axolotl/TRL configs.

Entries follow LLaMA-Factory's data/README.md (anchors.md §5.3). `dpo/trl.jsonl` is the one file
LLaMA-Factory cannot read (its converter expects `chosen`/`rejected` as one message dict, TRL's
explicit-prompt format has one-message lists); `dpo/messages_pair.jsonl` holds the same pairs in
the shape it reads, so that file is registered instead and the reason is kept in `NOT_REGISTERED`.
"""

from __future__ import annotations

from typing import Any

OPENAI_TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user",
               "assistant_tag": "assistant", "system_tag": "system"}
SHAREGPT_TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human",
                 "assistant_tag": "gpt", "system_tag": "system"}

# file inside a bundle -> dataset_info.json entry without file_name
LLAMAFACTORY: dict[str, dict[str, Any]] = {
    "sft/messages.jsonl": {"formatting": "sharegpt", "columns": {"messages": "messages"}, "tags": OPENAI_TAGS},
    "sft/sharegpt.jsonl": {"formatting": "sharegpt", "columns": {"messages": "conversations", "system": "system"},
                           "tags": SHAREGPT_TAGS},
    "sft/alpaca.jsonl": {"formatting": "alpaca", "columns": {"prompt": "instruction", "query": "input",
                                                            "response": "output", "system": "system",
                                                            "history": "history"}},
    # pre-training style (stage: pt): the ChatML-rendered conversation as one text
    "sft/chatml_text.jsonl": {"formatting": "alpaca", "columns": {"prompt": "text"}},
    "dpo/messages_pair.jsonl": {"formatting": "sharegpt", "ranking": True,
                                "columns": {"messages": "messages", "chosen": "chosen", "rejected": "rejected"},
                                "tags": OPENAI_TAGS},
    "dpo/prompt_pairs.jsonl": {"formatting": "alpaca", "ranking": True,
                               "columns": {"prompt": "prompt", "system": "system", "chosen": "chosen",
                                           "rejected": "rejected"}},
    "dpo/alpaca_pref.jsonl": {"formatting": "alpaca", "ranking": True,
                              "columns": {"prompt": "instruction", "query": "input", "chosen": "chosen",
                                          "rejected": "rejected", "system": "system", "history": "history"}},
}
NOT_REGISTERED = {
    "dpo/trl.jsonl": "chosen/rejected are one-message lists (TRL explicit prompt); LLaMA-Factory reads "
                     "dpo/messages_pair.jsonl, which holds the same pairs",
}


def dataset_name(prefix: str, bundle_dir: str, rel: str) -> str:
    """`distillery_sft_messages`, `distillery_eval_dpo_alpaca_pref`, `distillery_phases_reasoning_sft_alpaca`."""
    parts = [prefix, *[p for p in bundle_dir.split("/") if p], *rel.removesuffix(".jsonl").split("/")]
    return "_".join(p.replace("-", "_").replace(".", "_") for p in parts)


def dataset_info(prefix: str, bundles: dict[str, dict[str, int]]) -> dict[str, Any]:
    """Entries for every non-empty file LLaMA-Factory can read. `bundles`: bundle dir -> {file: rows}."""
    info: dict[str, Any] = {}
    for bundle_dir, rows in sorted(bundles.items()):
        for rel, n in sorted(rows.items()):
            if n == 0 or rel not in LLAMAFACTORY:
                continue
            path = f"{bundle_dir}/{rel}" if bundle_dir else rel
            info[dataset_name(prefix, bundle_dir, rel)] = {"file_name": path, **LLAMAFACTORY[rel]}
    return info


def axolotl_yaml(export_dir: str, rows: dict[str, int], eval_rows: dict[str, int]) -> str:
    """Two YAML documents (SFT, DPO) to paste into an axolotl config."""
    def path(rel: str, bundle: str = "") -> str:
        return "/".join(p for p in (export_dir.rstrip("/"), bundle, rel) if p)

    sft = [
        "# axolotl SFT: paste into your config (chat template of the base model is applied)",
        "datasets:",
        f"  - path: {path('sft/messages.jsonl')}",
        "    ds_type: json",
        "    type: chat_template",
        "    field_messages: messages",
        "    roles_to_train: [\"assistant\"]",
    ]
    if eval_rows.get("sft/messages.jsonl"):
        sft += ["test_datasets:", f"  - path: {path('sft/messages.jsonl', 'eval')}", "    ds_type: json",
                "    split: train", "    type: chat_template", "    field_messages: messages"]
    sft += ["# alternatives: sft/sharegpt.jsonl (type: chat_template, field_messages: conversations,",
            "#   message_property_mappings: {role: from, content: value}); sft/alpaca.jsonl",
            "#   (type: alpaca_w_system.load_instruct); sft/chatml_text.jsonl (type: completion)"]
    dpo = [
        "# axolotl DPO: paste into your config",
        "rl: dpo",
        "datasets:",
        f"  - path: {path('dpo/messages_pair.jsonl')}",
        "    ds_type: json",
        "    split: train",
        "    type: chat_template.default",
        "    field_messages: messages",
        "    field_chosen: chosen",
        "    field_rejected: rejected",
        "# alternative: dpo/prompt_pairs.jsonl (type: chatml.prompt_pairs, single-turn prompts only)",
    ]
    counts = f"# rows: sft/messages.jsonl={rows.get('sft/messages.jsonl', 0)}, " \
             f"dpo/messages_pair.jsonl={rows.get('dpo/messages_pair.jsonl', 0)}"
    return "\n".join([counts, *sft, "---", *dpo]) + "\n"


def trl_snippet(export_dir: str, eval_rows: dict[str, int]) -> str:
    """A Python snippet that loads the bundle for TRL's SFTTrainer and DPOTrainer."""
    d = export_dir.rstrip("/")

    def files(rel: str) -> str:
        test = f',\n{" " * 40}"test": "{d}/eval/{rel}"' if eval_rows.get(rel) else ""
        return f'{{"train": "{d}/{rel}"{test}}}'

    return f'''"""Load the distillery export in TRL (generated by scripts/export.py; copy and adapt)."""
from datasets import load_dataset

# SFT: conversational language modelling; the trainer applies the model's chat template.
sft = load_dataset("json", data_files={files("sft/messages.jsonl")})
# from trl import SFTConfig, SFTTrainer
# SFTTrainer(model=MODEL, args=SFTConfig(output_dir="out", max_length=MAX_LEN),
#            train_dataset=sft["train"]).train()

# DPO: explicit prompt (system + turns ending with the user) and one-message chosen/rejected lists.
dpo = load_dataset("json", data_files={files("dpo/trl.jsonl")})
# from trl import DPOConfig, DPOTrainer
# DPOTrainer(model=MODEL, args=DPOConfig(output_dir="out", max_length=MAX_LEN),
#            train_dataset=dpo["train"], processing_class=TOKENIZER).train()
# MAX_LEN: metrics/stats.json -> recommended_max_length
'''
