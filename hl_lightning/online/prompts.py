"""Prompt-only data for online mode: read, validate and tokenise once (chat template, as in training)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from hl_lightning.data.arithmetic import DATA_DIR
from hl_lightning.data.rows import DataError, as_messages, process_rows, read_rows

BUILTIN = "arithmetic"


@dataclass
class Prompt:
    """One prompt row, ready to sample from.

    Attributes:
        row: the raw row (``prompt`` plus extra fields such as ``answer``, passed to the reward).
        messages: the prompt as chat messages.
        prompt_ids: the chat-template rendering (``add_generation_prompt=True``) as token ids: what
            ``generate`` feeds the policy and what the objective scores the completion after.
    """

    row: dict
    messages: list[dict]
    prompt_ids: list[int]


def prompt_ids(tokenizer, messages: list[dict]) -> list[int]:
    """Token ids of the chat-template prompt, exactly as ``generate`` and ``tokenize.render`` build it."""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _prepare(tokenizer, max_prompt_length: int):
    def prepare(row: dict) -> Prompt:
        if row.get("prompt") is None:
            raise DataError(f"column 'prompt' is missing (columns found: {sorted(row)}); map another column to "
                            "it with the columns option", "missing column 'prompt'")
        messages = as_messages(row["prompt"], "user", "prompt")
        ids = prompt_ids(tokenizer, messages)
        if len(ids) > max_prompt_length:
            raise DataError(f"the prompt has {len(ids)} tokens, more than max_prompt_length={max_prompt_length}; "
                            "raise max_prompt_length", "prompt too long")
        return Prompt(row=row, messages=messages, prompt_ids=ids)

    return prepare


def load_prompts(path: str | Path, tokenizer, max_prompt_length: int, columns: dict[str, str] | None = None,
                 skip_invalid: bool = False) -> list[Prompt]:
    """Read a prompt file (JSONL, JSON, Parquet or a ``save_to_disk`` directory) into :class:`Prompt` s.

    Each row needs ``prompt`` (a string or a list of ``{role, content}`` messages); other columns are kept.
    A bad row fails with an error naming the file and the row, unless ``skip_invalid`` drops it.
    """
    rows = read_rows(path, columns)
    kept, _ = process_rows(rows, _prepare(tokenizer, max_prompt_length), str(path), skip_invalid)
    return [prompt for _, prompt in kept]


def prompt_paths(prompts: str, val_path: str | None) -> tuple[Path, Path | None]:
    """Train and held-out prompt files: "arithmetic" = the shipped ``prompts_{train,test}.jsonl``."""
    if prompts == BUILTIN:
        return DATA_DIR / "prompts_train.jsonl", Path(val_path) if val_path else DATA_DIR / "prompts_test.jsonl"
    return Path(prompts), Path(val_path) if val_path else None


def split(prompts: list[Prompt], fraction: float, seed: int) -> tuple[list[Prompt], list[Prompt]]:
    """A seeded held-out split: ``fraction`` of the prompts (at least one, never all)."""
    if len(prompts) < 2:
        raise DataError(f"{len(prompts)} prompt(s) cannot be split into train and held-out; pass val_path.")
    n_val = min(max(1, round(len(prompts) * fraction)), len(prompts) - 1)
    order = list(range(len(prompts)))
    random.Random(seed).shuffle(order)
    held = set(order[:n_val])
    return [p for i, p in enumerate(prompts) if i not in held], [p for i, p in enumerate(prompts) if i in held]
