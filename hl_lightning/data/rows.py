"""Read rows from local files and normalise the TRL data formats into chat messages.

Every normaliser returns the row with its text columns turned into lists of ``{"role", "content"}``
messages (other columns, such as ``answer``, are kept). Accepted per shape:

- paired: ``prompt`` + ``chosen`` + ``rejected``, each a string (standard) or a list of messages
  (conversational); without ``prompt`` (implicit prompt), the shared leading text or messages of
  ``chosen`` and ``rejected`` are the prompt.
- unpaired: ``prompt`` + ``completion`` + ``label`` (bool).
- groups: ``prompt`` + ``completions`` (list) + ``rewards`` (list of finite numbers, same length).

A completion that repeats the prompt messages before its own (a full conversation) is cut after them.
"""

from __future__ import annotations

import logging
import math
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

Messages = list[dict[str, str]]
_READERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}


class DataError(ValueError):
    """A data file or row cannot be used; the message says where, what is wrong and what to do."""

    def __init__(self, message: str, reason: str = "invalid row") -> None:
        """Create the error.

        Args:
            message: the full explanation shown to the user.
            reason: a short category, used to count rows dropped with ``skip_invalid``.
        """
        super().__init__(message)
        self.reason = reason


def _load(path: Path):
    import datasets

    if path.is_dir():
        data = datasets.load_from_disk(str(path))
        if isinstance(data, datasets.DatasetDict):
            raise DataError(f"{path} holds several splits {list(data)}; pass the directory of one split.")
        return data
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise DataError(f"{path}: unknown extension {path.suffix!r}; use one of {sorted(_READERS)} "
                        "or a directory saved with datasets.Dataset.save_to_disk.")
    quiet = datasets.utils.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:  # parsed into memory through a throwaway cache: nothing is left behind in ~/.cache
        with tempfile.TemporaryDirectory() as cache:
            return datasets.load_dataset(
                reader, data_files=str(path), split="train", cache_dir=cache, keep_in_memory=True
            )
    finally:
        if not quiet:
            datasets.enable_progress_bars()


def read_rows(path: str | Path, columns: dict[str, str] | None = None) -> list[dict]:
    """Read a local JSONL, JSON or Parquet file, or a ``save_to_disk`` directory, as a list of dicts.

    Args:
        path: the file or directory (nothing is fetched from the Hugging Face Hub).
        columns: maps our column names to the file's, e.g. ``{"prompt": "question"}``.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such file or directory. Pass a local JSONL, JSON or Parquet file or "
                        "a datasets.save_to_disk directory (Hub datasets are not downloaded: save one "
                        "locally).")
    try:
        data = _load(path)
    except DataError:
        raise
    except Exception as err:  # datasets / pyarrow raise many types for malformed files
        raise DataError(f"{path} could not be read ({type(err).__name__}: {err}).") from err
    found = data.column_names
    for ours, theirs in (columns or {}).items():
        if theirs not in found:
            raise DataError(f"{path}: column {theirs!r} (mapped to {ours!r} by the columns option) is not in "
                            f"the file; columns found: {found}.")
    rename = {theirs: ours for ours, theirs in (columns or {}).items()}
    return [{rename.get(key, key): value for key, value in row.items()} for row in data.to_list()]


def process_rows(
    rows: list[dict], fn: Callable[[dict], Any], source: str, skip_invalid: bool = False
) -> tuple[list[tuple[int, Any]], Counter]:
    """Apply ``fn`` to every row; return ``[(row index, result)]`` and the dropped-row counts per reason.

    A :class:`DataError` from ``fn`` is re-raised naming ``source`` and the 1-based row number, unless
    ``skip_invalid`` is set: then the row is dropped and counted, and a warning summarises the drops.
    """
    if not rows:
        raise DataError(f"{source} has no rows.")
    kept, dropped = [], Counter()
    for index, row in enumerate(rows):
        try:
            kept.append((index, fn(row)))
        except DataError as err:
            if not skip_invalid:
                raise DataError(f"{source}, row {index + 1}: {err} (or set skip_invalid=true to drop such "
                                "rows)", err.reason) from None
            dropped[err.reason] += 1
    summary = ", ".join(f"{count} {reason}" for reason, count in dropped.most_common())
    if not kept:
        raise DataError(f"{source}: all {len(rows)} rows are invalid ({summary}).")
    if dropped:
        log.warning("%s: dropped %d of %d rows (%s)", source, dropped.total(), len(rows), summary)
    return kept, dropped


def _need(row: dict, column: str) -> Any:
    if row.get(column) is None:
        raise DataError(f"column {column!r} is missing (columns found: {sorted(row)}); if the file names "
                        "it differently, map it with the columns option, e.g. "
                        f"columns={{{column!r}: 'its_name'}}",
                        f"missing column {column!r}")
    return row[column]


def _is_message(m: Any) -> bool:
    return isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)


def _common_prefix(a: Any, b: Any) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def as_messages(value: Any, role: str, column: str) -> Messages:
    """A string as one ``role`` turn, or a list of ``{role, content}`` dicts as clean messages."""
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    if isinstance(value, list) and value and all(_is_message(m) for m in value):
        return [{"role": m["role"], "content": m["content"]} for m in value]
    raise DataError(f"column {column!r} must be a string or a non-empty list of {{role, content}} messages, "
                    f"got {str(value)[:80]!r}", f"malformed {column!r}")


def completion_messages(value: Any, prompt: Messages, column: str) -> Messages:
    """Normalise a completion (dropping a repeated prompt prefix) and reject empty ones."""
    messages = as_messages(value, "assistant", column)
    if len(messages) > len(prompt) and messages[: len(prompt)] == prompt:
        messages = messages[len(prompt):]
    if not any(m["content"].strip() for m in messages):
        raise DataError(f"the completion in column {column!r} is empty", "empty completion")
    return messages


def _implicit_prompt(chosen: Any, rejected: Any) -> tuple[Messages, Any, Any]:
    """Split the shared start of ``chosen`` and ``rejected`` off as the prompt (TRL's implicit prompt)."""
    if isinstance(chosen, str) and isinstance(rejected, str):
        n = _common_prefix(chosen, rejected)
        n -= n > 0 and chosen[n - 1] == " "  # keep the space with the completion, as TRL does
        return [{"role": "user", "content": chosen[:n]}] * (n > 0), chosen[n:], rejected[n:]
    chosen = as_messages(chosen, "assistant", "chosen")
    rejected = as_messages(rejected, "assistant", "rejected")
    n = _common_prefix(chosen, rejected)
    return chosen[:n], chosen[n:], rejected[n:]


def normalize_pair(row: dict) -> dict:
    """Normalise a paired-preference row (standard, conversational or implicit prompt)."""
    chosen, rejected = _need(row, "chosen"), _need(row, "rejected")
    if row.get("prompt") is None:
        prompt, chosen, rejected = _implicit_prompt(chosen, rejected)
        if not prompt:
            raise DataError("there is no prompt column and chosen and rejected share no leading text to use "
                            "as the prompt; add a prompt column (or map one with the columns option)",
                            "no prompt")
    else:
        prompt = as_messages(row["prompt"], "user", "prompt")
    chosen = completion_messages(chosen, prompt, "chosen")
    rejected = completion_messages(rejected, prompt, "rejected")
    if chosen == rejected:
        raise DataError("chosen and rejected are identical; a pair needs two different completions",
                        "chosen == rejected")
    return {**row, "prompt": prompt, "chosen": chosen, "rejected": rejected}


def normalize_unpaired(row: dict) -> dict:
    """Normalise an unpaired row (``prompt``, ``completion``, boolean ``label``)."""
    prompt = as_messages(_need(row, "prompt"), "user", "prompt")
    completion = completion_messages(_need(row, "completion"), prompt, "completion")
    label = _need(row, "label")
    if not isinstance(label, bool):
        raise DataError(f"label must be true or false (desirable or not), got {label!r}; convert it, e.g. "
                        "label = score > threshold", "label not a bool")
    return {**row, "prompt": prompt, "completion": completion, "label": label}


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def normalize_group(row: dict) -> dict:
    """Normalise a group row (``prompt``, ``completions``, ``rewards``)."""
    prompt = as_messages(_need(row, "prompt"), "user", "prompt")
    completions, rewards = _need(row, "completions"), _need(row, "rewards")
    if not isinstance(completions, list) or len(completions) < 2:
        raise DataError(f"a group needs a list of at least 2 completions, got {str(completions)[:80]!r}",
                        "group of < 2 completions")
    if not isinstance(rewards, list) or len(rewards) != len(completions) or not all(map(_is_number, rewards)):
        raise DataError(f"rewards must be a list of {len(completions)} finite numbers (one per completion), "
                        f"got {str(rewards)[:80]!r}", "bad rewards")
    completions = [completion_messages(c, prompt, "completions") for c in completions]
    return {**row, "prompt": prompt, "completions": completions, "rewards": [float(r) for r in rewards]}
