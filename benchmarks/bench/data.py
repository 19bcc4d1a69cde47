"""The job both frameworks train on: one model directory and the same conversational JSONL rows."""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

# A fixed, neutral context that lengthens every prompt (as a long system prompt / retrieved document would).
CONTEXT = (
    "Arithmetic notes. Addition combines two numbers into their sum; subtraction takes the second "
    "number away from the first. Work digit by digit from the right and carry or borrow as needed. "
)


def model_dir(spec: str, work: Path) -> Path:
    """A save_pretrained directory (model + tokenizer) that both frameworks load."""
    from hl_lightning.models.loading import load_causal_lm, load_tokenizer, resolve_pretrained

    if spec != "tiny-random":
        return Path(resolve_pretrained(spec))
    target = work / "tiny-random"
    if not target.exists():
        load_causal_lm("tiny-random").save_pretrained(target)
        load_tokenizer("tiny-random").save_pretrained(target)
    return target


def context_text(tokenizer, n_tokens: int) -> str:
    """The fixed context repeated and cut to ``n_tokens`` tokens (whole words)."""
    words = (CONTEXT * (n_tokens // 8 + 8)).split()
    lo, hi = 0, len(words)
    while lo < hi:  # the most words whose tokenisation fits in n_tokens
        mid = (lo + hi + 1) // 2
        if len(tokenizer(" ".join(words[:mid]), add_special_tokens=False)["input_ids"]) <= n_tokens:
            lo = mid
        else:
            hi = mid - 1
    return " ".join(words[:lo])


def build_data(args: argparse.Namespace, tokenizer, work: Path) -> dict:
    """Conversational JSONL files (pairs for DPO, unpaired items for KTO) shared by both frameworks."""
    from hl_lightning.data.arithmetic import DATA_DIR

    pairs = [json.loads(line) for line in (DATA_DIR / "pairs_train.jsonl").read_text().splitlines() if line]
    items = [json.loads(line) for line in (DATA_DIR / "unpaired_train.jsonl").read_text().splitlines() if line]
    groups = [json.loads(line) for line in (DATA_DIR / "groups_train.jsonl").read_text().splitlines() if line]

    def full_len(prompt, completion) -> int:
        return len(tokenizer.apply_chat_template(prompt + completion, tokenize=True, return_dict=True)["input_ids"])

    def msg(role, content):
        return [{"role": role, "content": content}]

    def rows(context: str | None) -> tuple[list[dict], list[dict], dict[int, list[dict]]]:
        system, extra = [], ""
        if context is not None and args.long_part == "prompt":
            system = msg("system", context)  # replaces the template's default system prompt
        elif context is not None:
            extra = context + "\n"
        pair_rows = [
            {
                "prompt": system + msg("user", r["prompt"]),
                "chosen": msg("assistant", extra + r["chosen"]),
                "rejected": msg("assistant", extra + r["rejected"]),
            }
            for r in pairs
        ]
        item_rows = [
            {
                "prompt": system + msg("user", r["prompt"]),
                "completion": msg("assistant", extra + r["completion"]),
                "label": bool(r["label"]),
            }
            for r in items
        ]
        return (
            pair_rows,
            item_rows,
            {g: group_rows(groups, g, lambda c: msg("assistant", extra + c), system, msg) for g in (4, 8)},
        )

    def lengths_of(pair_rows: list[dict]) -> list[int]:
        return [full_len(r["prompt"], r[c]) for r in pair_rows for c in ("chosen", "rejected")]

    pair_rows, item_rows, group_sets = rows(None)
    lengths = lengths_of(pair_rows)
    if args.pad_to_length:  # the longest context (in tokens) whose longest row still fits in pad_to_length
        lo, hi = 1, args.pad_to_length
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if max(lengths_of(rows(context_text(tokenizer, mid))[0])) <= args.pad_to_length:
                lo = mid
            else:
                hi = mid - 1
        pair_rows, item_rows, group_sets = rows(context_text(tokenizer, lo))
        lengths = lengths_of(pair_rows)
    contents = {"pairs": pair_rows, "unpaired": item_rows, **{f"groups{g}": v for g, v in group_sets.items()}}
    files = {name: work / f"{name}.jsonl" for name in contents}
    for name, path in files.items():
        path.write_text("".join(json.dumps(r) + "\n" for r in contents[name]))
    return {
        "files": {k: str(v) for k, v in files.items()},
        "mean_tokens": statistics.mean(lengths),
        "max_tokens": max(lengths),
    }


def group_rows(groups: list[dict], size: int, completion, system: list[dict], msg) -> list[dict]:
    """GRPO groups of ``size`` completions from the shipped groups of 4: group i takes its own completions, then
    (for 8) those of group i + 1, rewarded 0 (they answer another question)."""
    out = []
    for i, g in enumerate(groups):
        texts, rewards = list(g["completions"]), list(g["rewards"])
        while len(texts) < size:
            other = groups[(i + len(texts) // 4) % len(groups)]
            texts, rewards = texts + other["completions"], rewards + [0.0] * len(other["completions"])
        out.append(
            {
                "prompt": system + msg("user", g["prompt"]),
                "completions": [completion(t) for t in texts[:size]],
                "rewards": rewards[:size],
            }
        )
    return out
