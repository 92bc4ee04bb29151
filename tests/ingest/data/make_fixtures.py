"""Rebuild the small real-data fixtures of this folder (see README.md here for licenses and layout).

    python tests/ingest/data/make_fixtures.py /path/to/datasets

reads hh_rlhf/harmless-base_test.jsonl.gz and oasst_sample/en_100_{tree,message}.jsonl.gz of the
public datasets folder and writes the fixtures deterministically (the selection depends on the data only).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import sys
from pathlib import Path

HERE = Path(__file__).parent


def _hh_pairs(root: Path) -> list[tuple[int, list[dict], str, str]]:
    """(row, prompt turns, chosen, rejected) of HH pairs whose transcripts share the prompt, shortest first."""
    sys.path.insert(0, str(HERE.parents[2] / "src"))
    from distillery.sources.adapters import RowError, parse_hh

    out = []
    for i, line in enumerate(gzip.open(root / "hh_rlhf/harmless-base_test.jsonl.gz", "rt", encoding="utf-8")):
        r = json.loads(line)
        try:
            c, j = parse_hh(r["chosen"]), parse_hh(r["rejected"])
        except RowError:
            continue
        if c[:-1] != j[:-1] or c[-1]["role"] != "assistant" or not c[-1]["content"] or not j[-1]["content"]:
            continue
        if len(r["chosen"]) + len(j[-1]["content"]) <= 500 and len(c[-1]["content"]) > 20 and len(j[-1]["content"]) > 20:
            out.append((i, c[:-1], c[-1]["content"], j[-1]["content"]))
    return out


def hh_judged(pairs) -> None:
    """Multi-turn HH pairs as a judged set: answers in a fixed order, `preference` 1.0 = first better,
    2.0 = second better; 1.5 = no preference (tie); one judgment lost as NaN."""
    multi = [p for p in pairs if len(p[1]) >= 3][:13]
    with open(HERE / "hh_judged.jsonl", "w", encoding="utf-8") as fh:
        for k, (i, prompt, chosen, rejected) in enumerate(multi):
            first_wins = k % 2 == 0
            pref = {10: 1.5, 11: 1.5, 12: float("nan")}.get(k, 1.0 if first_wins else 2.0)
            row = {"pair_id": f"harmless-base-test-{i}", "context": prompt,
                   "response_1": chosen if first_wins else rejected,
                   "response_2": rejected if first_wins else chosen, "preference": pref}
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def hh_verdicts(pairs) -> None:
    """Single-turn HH pairs as a judge's verdicts in CSV: A / B (better answer), C (tie), error."""
    single = [p for p in pairs if len(p[1]) == 1][:12]
    with open(HERE / "hh_verdicts.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["question_id", "question", "answer_a", "answer_b", "verdict"])
        for k, (i, prompt, chosen, rejected) in enumerate(single):
            a_wins = k % 2 == 1
            verdict = {10: "C", 11: "error"}.get(k, "A" if a_wins else "B")
            w.writerow([f"harmless-base-test-{i}", prompt[0]["content"],
                        chosen if a_wins else rejected, rejected if a_wins else chosen, verdict])


def oasst_pairs(root: Path) -> None:
    """Two ranked sibling replies per first prompt, in message-id order (not rank order), with their
    human ranks (0 = best) and thumbs-up counts (emojis '+1', 0 when none)."""
    rows = []
    for line in gzip.open(root / "oasst_sample/en_100_message.jsonl.gz", "rt", encoding="utf-8"):
        m = json.loads(line)
        ranked = [r for r in m.get("replies") or [] if r["role"] == "assistant" and isinstance(r.get("rank"), int)
                  and not r.get("deleted") and not r.get("synthetic")]
        if len(ranked) < 2:
            continue
        a, b = sorted(ranked[:2], key=lambda r: r["message_id"])
        rows.append({"parent_id": m["message_id"], "prompt": m["text"], "reply_a": a["text"], "reply_b": b["text"],
                     "rank_a": a["rank"], "rank_b": b["rank"],
                     "thumbs_up_a": (a.get("emojis") or {}).get("+1", 0),
                     "thumbs_up_b": (b.get("emojis") or {}).get("+1", 0)})
    rows.sort(key=lambda r: (len(r["prompt"]) + len(r["reply_a"]) + len(r["reply_b"]), r["parent_id"]))
    tie = next(r for r in rows if r["thumbs_up_a"] == r["thumbs_up_b"])   # and the shortest tie of thumbs
    with open(HERE / "oasst_ranked_pairs.jsonl", "w", encoding="utf-8") as fh:
        for r in [*rows[:10], *([tie] if tie not in rows[:10] else [])]:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")


def oasst_dialogues(root: Path) -> None:
    """Human-written OASST conversations (root to a leaf) as a two-party chat log: speakers are
    anonymous ids, plus `agent` (agent_1 = the prompter, Topical-Chat style). Many end on the prompter."""
    paths = []

    def walk(m: dict, path: list[dict], tree: str) -> None:
        here = [*path, m]
        replies = [r for r in m.get("replies") or [] if not r.get("deleted") and r.get("review_result") is not False
                   and not r.get("synthetic")]
        if not replies:
            paths.append((tree, here))
        for r in replies:
            walk(r, here, tree)

    for line in gzip.open(root / "oasst_sample/en_100_tree.jsonl.gz", "rt", encoding="utf-8"):
        t = json.loads(line)
        if not t["prompt"].get("synthetic"):
            walk(t["prompt"], [], t["message_tree_id"])
    want = {3: 4, 4: 3, 5: 2, 6: 1}          # dialogues per length: odd lengths end on the prompter
    picked, trees = [], set()
    for tree, path in sorted(paths, key=lambda p: (sum(len(m["text"]) for m in p[1]), p[1][-1]["message_id"])):
        if want.get(len(path)) and tree not in trees and sum(len(m["text"]) for m in path) < 1400:
            want[len(path)] -= 1
            trees.add(tree)
            picked.append((tree, path))
    tree, path = picked[0]                    # and one abandoned after its opening message
    picked.append((tree + "-opening", path[:1]))
    with open(HERE / "oasst_dialogues.jsonl", "w", encoding="utf-8") as fh:
        for tree, path in picked:
            def speaker(role: str) -> str:
                return hashlib.sha1(f"{tree}:{role}".encode()).hexdigest()[:8]
            turns = [{"speaker_id": speaker(m["role"]), "agent": "agent_1" if m["role"] == "prompter" else "agent_2",
                      "text": m["text"]} for m in path]
            fh.write(json.dumps({"conversation_id": tree, "turns": turns}, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    src = Path(sys.argv[1] if len(sys.argv) > 1 else "/work/shared/datasets")
    pairs = _hh_pairs(src)
    hh_judged(pairs)
    hh_verdicts(pairs)
    oasst_pairs(src)
    oasst_dialogues(src)
