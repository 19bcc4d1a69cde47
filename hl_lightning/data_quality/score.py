"""Score every completion of an offline file under a model: its mean per-token log-prob, completion tokens only.

The file is read, checked and tokenised by the library's own data modules, exactly as training reads it: pairs by
:class:`~hl_lightning.data.PreferenceDataModule` (roles ``chosen`` / ``rejected``), unpaired rows by
:class:`~hl_lightning.data.UnpairedPreferenceDataModule` (``desirable`` / ``undesirable``), groups by
:class:`~hl_lightning.data.GroupDataModule` (``member``). The layout is decided once from the file's columns
(:func:`~hl_lightning.data.columns.check_layout`; a file with the columns of two families is refused), and the
log-probs come from :func:`~hl_lightning.models.completion_logps`, the function training uses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from tqdm.auto import tqdm

from hl_lightning.data import GroupDataModule, PreferenceDataModule, UnpairedPreferenceDataModule
from hl_lightning.data.base import BaseDataModule
from hl_lightning.data.columns import GROUPS, PAIRS, UNPAIRED, Layout, check_layout
from hl_lightning.data.rows import Messages, process_rows, read_rows
from hl_lightning.data.tokenize import join, pad_batch
from hl_lightning.models.logprobs import completion_logps

if TYPE_CHECKING:
    from hl_lightning.models.logprobs import CausalLM


@dataclass
class Completion:
    """One completion of the file, tokenised as training tokenises it.

    Attributes:
        row: the 1-based row of the file it comes from (as in the library's error messages).
        role: ``chosen`` / ``rejected`` (pairs), ``desirable`` / ``undesirable`` (unpaired rows), ``member``
            (groups).
        member: its position among the completions of its row (0-based).
        sequence: ``{"input_ids", "completion_mask"}``: the rendered prompt, then the completion.
        truncated: ``max_length`` or ``max_prompt_length`` cut the prompt or the completion.
    """

    row: int
    role: str
    member: int
    sequence: dict
    truncated: bool


@dataclass
class Score:
    """The score of one completion (one line of ``--output``).

    Attributes:
        row, role, member, truncated: as in :class:`Completion`.
        mean_logp: the mean log-prob of its tokens under the model (completion tokens only; each token given the
            prompt and the completion tokens before it).
        tokens: the number of completion tokens scored.
    """

    row: int
    role: str
    member: int
    mean_logp: float
    tokens: int
    truncated: bool


class _Recorder(BaseDataModule):
    """A data module that remembers, for every sequence it encodes, whether the length limits cut it."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.cut: list[bool] = []

    def encode(self, prompt: Messages, completion: Messages) -> tuple[list[int], list[int]]:
        """The module's own tokenisation, plus one truncation flag per sequence in ``cut``."""
        before = self._truncated
        ids = super().encode(prompt, completion)
        self.cut.append(self._truncated > before)
        return ids

    def recorded_row(self, row: dict) -> tuple[list[dict], list[bool]]:
        """The items of ``row`` (``prepare_row``) and the truncation flags of its sequences, in encoding order."""
        start = len(self.cut)
        items = self.prepare_row(row)
        return items, self.cut[start:]


class _Pairs(_Recorder, PreferenceDataModule):
    pass


class _Unpaired(_Recorder, UnpairedPreferenceDataModule):
    pass


class _Groups(_Recorder, GroupDataModule):
    pass


Roles = Callable[[dict], list[tuple[str, dict]]]  # a data module's item -> its (role, sequence)s, in encoding order


def _pair_roles(item: dict) -> list[tuple[str, dict]]:
    return [("chosen", item["chosen"]), ("rejected", item["rejected"])]


def _unpaired_roles(item: dict) -> list[tuple[str, dict]]:
    role = "desirable" if item["desirable"] else "undesirable"
    return [(role, join(item["prompt_ids"], item["completion_ids"]))]


def _group_roles(item: dict) -> list[tuple[str, dict]]:
    return [("member", sequence) for sequence in item["sequences"]]


FAMILIES: dict[Layout, tuple[type[_Recorder], Roles]] = {
    PAIRS: (_Pairs, _pair_roles),
    UNPAIRED: (_Unpaired, _unpaired_roles),
    GROUPS: (_Groups, _group_roles),
}


def read_completions(
    data: str | Path,
    tokenizer,
    columns: dict[str, str | None] | None = None,
    max_length: int = 256,
    max_prompt_length: int = 128,
    limit: int | None = None,
    skip_invalid: bool = False,
) -> list[Completion]:
    """Every completion of the first ``limit`` rows of ``data`` (all rows when None), tokenised as training does.

    Args:
        data: a local JSONL, JSON or Parquet file or a ``save_to_disk`` directory holding pairs, unpaired rows or
            groups (TRL formats, docs/data.md).
        tokenizer: the model's tokenizer (its chat template renders the prompt).
        columns: maps our column names to the file's, as the data modules' ``columns`` option.
        max_length, max_prompt_length: the data modules' length limits (cut, never refused).
        limit: read only the first ``limit`` rows.
        skip_invalid: drop bad rows (counted in a warning) instead of raising.

    Raises:
        DataError: one line naming the file, the row or column and the fix.
    """
    if limit is not None and limit < 1:
        raise ValueError(f"limit={limit} must be >= 1 (rows to read), or None for the whole file.")
    rows = read_rows(data, columns)[:limit]
    layout = check_layout(rows, str(data), tuple(FAMILIES), columns)
    module_class, roles = FAMILIES[layout or PAIRS]  # no readable row: the rows raise their own errors
    module = module_class(path=str(data), columns=columns, max_length=max_length, max_prompt_length=max_prompt_length)
    module.tokenizer = tokenizer
    kept, _ = process_rows(rows, module.recorded_row, str(data), skip_invalid, module.id_columns)
    completions = []
    for index, (items, cut) in kept:
        sequences = [pair for item in items for pair in roles(item)]
        for member, ((role, sequence), truncated) in enumerate(zip(sequences, cut, strict=True)):
            completions.append(Completion(index + 1, role, member, sequence, truncated))
    return completions


@torch.inference_mode()
def score_completions(
    model: CausalLM, completions: list[Completion], pad_id: int, batch_size: int = 8, progress: bool = True
) -> list[Score]:
    """The mean per-token log-prob of each completion under ``model`` as given (call ``model.eval()`` first), on
    the model's device.

    Sequences are batched longest first (the first batch is the largest, so a batch that does not fit in memory
    fails at once) and right-padded; the result keeps the order of ``completions``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be >= 1.")
    device = next(model.parameters()).device
    order = sorted(range(len(completions)), key=lambda i: -len(completions[i].sequence["input_ids"]))
    sums: dict[int, tuple[float, int]] = {}
    for start in tqdm(range(0, len(order), batch_size), desc="data-quality", unit="batch", disable=not progress):
        chunk = order[start : start + batch_size]
        rows = pad_batch([completions[i].sequence for i in chunk], pad_id)
        scored = completion_logps(
            model, rows.input_ids.to(device), rows.attention_mask.to(device), rows.completion_mask.to(device)
        )
        totals, counts = scored.logps.sum(-1).tolist(), scored.mask.sum(-1).tolist()
        sums.update(zip(chunk, zip(totals, counts, strict=True), strict=True))
    return [
        Score(c.row, c.role, c.member, sums[i][0] / sums[i][1], sums[i][1], c.truncated)
        for i, c in enumerate(completions)
    ]
