"""Normalise the TRL data formats into chat messages, with one :class:`DataError` per problem.

Every normaliser returns the row with its text columns turned into lists of ``{"role", "content"}``
messages (other columns, such as ``answer``, are kept). Accepted per shape:

- paired: ``prompt`` + ``chosen`` + ``rejected``, each a string (standard) or a list of messages
  (conversational); a row without the ``prompt`` key (implicit prompt) takes the shared leading text or
  messages of ``chosen`` and ``rejected`` as the prompt, while a ``prompt`` that is null is an error. Whether a
  file may use the implicit prompt is decided once per file (:mod:`hl_lightning.data.columns`).
- unpaired: ``prompt`` + ``completion`` + ``label`` (bool).
- groups: ``prompt`` + ``completions`` (list of at least 2) + ``rewards`` (list of finite numbers, same length).
- prompts (online): ``prompt``.

A message is ``{"role": one of ROLES, "content": non-blank text}``; a message list is never empty. A
completion that repeats the prompt messages before its own (a full conversation) is cut after them.
Every problem is a :class:`DataError` with a short ``reason`` ("wrong type", "unknown role", ...).
"""

from __future__ import annotations

import difflib
import math
from typing import Any

from hl_lightning.data.readers import BadRow, DataError, describe

Messages = list[dict[str, str]]
ROLES = ("system", "user", "assistant", "tool")
_ROLE_HINTS = {
    "human": "user",
    "gpt": "assistant",
    "bot": "assistant",
    "model": "assistant",
    "ai": "assistant",
    "chatbot": "assistant",
    "function": "tool",
    "ipython": "tool",
    "developer": "system",
}
_OURS = {"prompt", "chosen", "rejected", "completion", "completions", "label", "rewards", "id", "prompt_id"}
_SYNONYMS = {"prompt": ("question", "instruction", "query", "input", "problem")}


def similar_column(column: str, found: list[str]) -> str | None:
    """A column of the row that may hold ``column`` under another name (not one of our own names)."""
    others = [name for name in found if name not in _OURS]
    for name in others:
        if column in name.lower() or name.lower() in _SYNONYMS.get(column, ()):
            return name
    close = difflib.get_close_matches(column, others, n=1, cutoff=0.6)
    return close[0] if close else None


def _need(row: dict, column: str) -> Any:
    if isinstance(row, BadRow):
        raise row.error
    if row.get(column) is not None:
        return row[column]
    if column in row:
        message = (
            f"column {column!r} has no value in this row (it is null or absent); give every row a {column!r} value"
        )
    else:
        found = sorted(key for key, value in row.items() if value is not None)
        message = f"column {column!r} is missing (columns found: {found})"
        similar = similar_column(column, found)
        if similar:
            message += f"; if {similar!r} holds it, map it with the columns option: columns={{{column!r}: {similar!r}}}"
        else:
            message += (
                f"; add a {column!r} field to every row: the columns option only helps when the file "
                "has it under another name"
            )
    raise DataError(message, f"missing column {column!r}")


def _label(column: str, item: int | None) -> str:
    return f"column {column!r}" if item is None else f"column {column!r}, completion {item}"


def _message(m: Any, label: str, position: int) -> dict[str, str]:
    """One message of a list, checked: a ``{role, content}`` object, a known role, non-blank content."""
    where = f"{label}, message {position}"
    if not isinstance(m, dict):
        raise DataError(f"{where} must be a {{role, content}} object, got {describe(m)}", "malformed message")
    for field in ("role", "content"):
        if not isinstance(m.get(field), str):
            raise DataError(
                f"{where}: {field!r} must be a string, got {describe(m.get(field))}; every message "
                "needs a string role and content",
                "malformed message",
            )
    role, content = m["role"], m["content"]
    if role not in ROLES:
        hint = _ROLE_HINTS.get(role.lower(), role.lower() if role.lower() in ROLES else None)
        raise DataError(
            f"{where}: unknown role {role!r}; allowed roles: {', '.join(ROLES)}"
            + (f" (rename {role!r} to {hint!r})" if hint else ""),
            "unknown role",
        )
    if not content.strip():
        raise DataError(f"{label} is empty: message {position} has no text; fill it in", "empty content")
    return {"role": role, "content": content}


def as_messages(value: Any, role: str, column: str, item: int | None = None) -> Messages:
    """A string as one ``role`` turn, or a list of ``{role, content}`` dicts as clean, checked messages.

    ``column`` (and ``item``, the 1-based completion of a group) name the value in error messages.
    """
    label = _label(column, item)
    if isinstance(value, str):
        if not value.strip():
            raise DataError(f"{label} is empty (no text); fill it in", "empty content")
        return [{"role": role, "content": value}]
    if not isinstance(value, list):
        raise DataError(
            f"{label} must be a string or a list of {{role, content}} messages, got {describe(value)}", "wrong type"
        )
    if not value:
        raise DataError(f"{label} is an empty list of messages; give it at least one message", "empty content")
    return [_message(m, label, position) for position, m in enumerate(value, 1)]


def completion_messages(value: Any, prompt: Messages, column: str, item: int | None = None) -> Messages:
    """Normalise a completion, dropping a repeated prompt prefix; one that is only the prompt is an error."""
    messages = as_messages(value, "assistant", column, item)
    if len(messages) > len(prompt) and messages[: len(prompt)] == prompt:
        return messages[len(prompt) :]
    if prompt and messages == prompt:
        raise DataError(
            f"{_label(column, item)} only repeats the prompt; add the completion's own messages", "empty content"
        )
    return messages


def _common_prefix(a: Any, b: Any) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


def _implicit_prompt(chosen: Any, rejected: Any) -> tuple[Messages, Any, Any]:
    """Split the shared start of ``chosen`` and ``rejected`` off as the prompt (TRL's implicit prompt)."""
    if isinstance(chosen, str) and isinstance(rejected, str):
        n = _common_prefix(chosen, rejected)
        n -= n > 0 and chosen[n - 1] == " "  # keep the space with the completion, as TRL does
        prompt = [{"role": "user", "content": chosen[:n]}] if chosen[:n].strip() else []
        return prompt, chosen[n:], rejected[n:]
    chosen = as_messages(chosen, "assistant", "chosen")
    rejected = as_messages(rejected, "assistant", "rejected")
    n = _common_prefix(chosen, rejected)
    return chosen[:n], chosen[n:], rejected[n:]


def _identical() -> DataError:
    return DataError("chosen and rejected are identical; a pair needs two different completions", "chosen == rejected")


def normalize_pair(row: dict) -> dict:
    """Normalise a paired-preference row (standard, conversational or implicit prompt)."""
    chosen, rejected = _need(row, "chosen"), _need(row, "rejected")
    if chosen == rejected:
        raise _identical()
    if "prompt" not in row:  # the file has no prompt column (or the columns option says prompt: null)
        prompt, chosen, rejected = _implicit_prompt(chosen, rejected)
        if not prompt:
            raise DataError(
                "there is no prompt column and chosen and rejected share no leading text to use "
                "as the prompt; add a prompt column (or map one with the columns option)",
                "no prompt",
            )
    else:
        prompt = as_messages(_need(row, "prompt"), "user", "prompt")
    chosen = completion_messages(chosen, prompt, "chosen")
    rejected = completion_messages(rejected, prompt, "rejected")
    if chosen == rejected:
        raise _identical()
    return {**row, "prompt": prompt, "chosen": chosen, "rejected": rejected}


def normalize_unpaired(row: dict) -> dict:
    """Normalise an unpaired row (``prompt``, ``completion``, boolean ``label``)."""
    prompt = as_messages(_need(row, "prompt"), "user", "prompt")
    completion = completion_messages(_need(row, "completion"), prompt, "completion")
    label = _need(row, "label")
    if not isinstance(label, bool):
        raise DataError(
            f"column 'label' is {describe(label)}, but label must be true or false "
            "(desirable or not); convert it, e.g. label = score > threshold",
            "wrong type",
        )
    return {**row, "prompt": prompt, "completion": completion, "label": label}


def _is_number(x: Any) -> bool:
    if isinstance(x, bool) or not isinstance(x, int | float):
        return False
    try:
        return math.isfinite(x)
    except OverflowError:  # an int too large for a float
        return False


def _rewards(rewards: Any, n: int) -> list[float]:
    need = f"it must be a list of {n} finite numbers (one per completion)"
    if not isinstance(rewards, list):
        raise DataError(f"column 'rewards' is {describe(rewards)}; {need}", "wrong type")
    if len(rewards) != n:
        raise DataError(f"column 'rewards' has {len(rewards)} value(s) for {n} completions; {need}", "rewards mismatch")
    for i, reward in enumerate(rewards, 1):
        if not _is_number(reward):
            raise DataError(f"column 'rewards', reward {i} is {describe(reward)}; {need}", "non-finite reward")
    return [float(reward) for reward in rewards]


def normalize_group(row: dict) -> dict:
    """Normalise a group row (``prompt``, ``completions``, ``rewards``)."""
    prompt = as_messages(_need(row, "prompt"), "user", "prompt")
    completions, rewards = _need(row, "completions"), _need(row, "rewards")
    if not isinstance(completions, list):
        raise DataError(
            f"column 'completions' must be a list of completions (strings or message lists), got "
            f"{describe(completions)}",
            "wrong type",
        )
    if len(completions) < 2:
        raise DataError(
            f"column 'completions' holds {len(completions)} completion(s), but a group needs at least "
            "2 completions to compare; add completions or write the row as a pair or unpaired row",
            "group of one" if completions else "empty content",
        )
    rewards = _rewards(rewards, len(completions))
    completions = [completion_messages(c, prompt, "completions", k) for k, c in enumerate(completions, 1)]
    return {**row, "prompt": prompt, "completions": completions, "rewards": rewards}


def normalize_prompt(row: dict) -> dict:
    """Normalise an online prompt row: ``prompt`` (a string or a list of messages) as messages."""
    return {**row, "prompt": as_messages(_need(row, "prompt"), "user", "prompt")}
