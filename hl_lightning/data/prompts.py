"""One prompt source for offline data, online rollouts, evaluation and sampling.

Where the files are (:func:`data_paths`: "arithmetic" and "sentiment" = the shipped tasks), how a held-out
share is drawn (:func:`holdout_split`), and prompt files read for online sampling (:func:`load_prompts`). A prompt is
rendered by :func:`hl_lightning.models.chat.render_prompt` (the tokenizer's chat template), as in training.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hl_lightning.data import arithmetic, sentiment
from hl_lightning.data.columns import PROMPTS, check_layout
from hl_lightning.data.rows import DataError, normalize_prompt, process_rows, read_rows
from hl_lightning.models.chat import Messages, prompt_ids

if TYPE_CHECKING:
    from hl_lightning.data.handover import ModelHandle

log = logging.getLogger(__name__)

BUILTIN = "arithmetic"
TASKS = {"arithmetic": arithmetic.DATA_DIR, "sentiment": sentiment.DATA_DIR}  # shipped tasks: name -> directory


def data_paths(path: str, val_path: str | None, stem: str) -> tuple[Path, Path | None]:
    """Train and validation files. A shipped task (``"arithmetic"``, ``"sentiment"``: :data:`TASKS`): its
    ``<stem>_train.jsonl`` and, unless ``val_path`` is given, ``<stem>_test.jsonl``; otherwise ``path`` and
    ``val_path`` (None: split later)."""
    val = Path(val_path).expanduser() if val_path else None
    if path in TASKS:
        return TASKS[path] / f"{stem}_train.jsonl", val or TASKS[path] / f"{stem}_test.jsonl"
    return Path(path).expanduser(), val


def holdout_split(items: list, fraction: float, seed: int, source: str) -> tuple[list, list]:
    """A seeded held-out split: ``fraction`` of ``items`` (at least one, never all), order kept in both parts."""
    if len(items) < 2:
        raise DataError(
            f"{source}: {len(items)} valid row(s) cannot be split into train and validation; add rows or pass val_path."
        )
    n_val = min(max(1, round(len(items) * fraction)), len(items) - 1)
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    held = set(order[:n_val])
    return [x for i, x in enumerate(items) if i not in held], [x for i, x in enumerate(items) if i in held]


def tokenizer_spec(spec: str | None, model: ModelHandle | None) -> str:
    """The tokenizer a data module loads: ``spec`` when given, else the model's (handed over by the objective module,
    so data and model agree by default, from Python as on the CLI), else the embedded "smollm2" (logged in one line:
    the model may be another)."""
    if spec is not None:
        return spec
    if model is not None and model.model_spec:
        return model.model_spec
    log.warning(
        "The data has no tokenizer option and no model spec to take it from (%s): it uses the 'smollm2' "
        "tokenizer; set the data's tokenizer to the model's spec if the model is another",
        "the model was passed as an object" if model is not None else "no hl_lightning module handed itself over",
    )
    return "smollm2"


@dataclass
class Prompt:
    """One prompt row, ready to sample from.

    Attributes:
        row: the raw row (``prompt`` plus extra fields such as ``answer``, passed to the reward).
        messages: the prompt as chat messages.
        prompt_ids: token ids of the rendered messages (:func:`hl_lightning.models.chat.prompt_ids`): what
            generation feeds the policy and what the objective scores the completion after.
    """

    row: dict
    messages: Messages
    prompt_ids: list[int]


def _prepare(tokenizer, max_prompt_length: int):
    def prepare(row: dict) -> Prompt:
        messages = normalize_prompt(row)["prompt"]
        ids = prompt_ids(tokenizer, messages)
        if len(ids) > max_prompt_length:
            raise DataError(
                f"the prompt has {len(ids)} tokens, more than max_prompt_length={max_prompt_length}; "
                "raise max_prompt_length",
                "prompt too long",
            )
        return Prompt(row=row, messages=messages, prompt_ids=ids)

    return prepare


def load_prompts(
    path: str | Path,
    tokenizer,
    max_prompt_length: int,
    columns: dict[str, str | None] | None = None,
    skip_invalid: bool = False,
) -> list[Prompt]:
    """Read a prompt file (JSONL, JSON, Parquet or a ``save_to_disk`` directory) into :class:`Prompt` s.

    Each row needs ``prompt`` (a string or a list of ``{role, content}`` messages); other columns are kept.
    A bad row fails with an error naming the file and the row, unless ``skip_invalid`` drops it.
    """
    rows = read_rows(path, columns)
    check_layout(rows, str(path), (PROMPTS,), columns)
    kept, _ = process_rows(
        rows, _prepare(tokenizer, max_prompt_length), str(path), skip_invalid, id_columns=("id", "prompt_id")
    )
    return [prompt for _, prompt in kept]
