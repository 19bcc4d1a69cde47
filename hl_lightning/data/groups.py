"""Grouped data (GRPO): several scored completions per prompt, with group-normalised advantages."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any

import torch

from hl_lightning.data.base import BaseDataModule
from hl_lightning.data.batches import GroupBatch
from hl_lightning.data.columns import GROUPS, PAIRS, Layout
from hl_lightning.data.normalize import normalize_group, normalize_pair
from hl_lightning.data.readers import DataError
from hl_lightning.data.tokenize import join, pad_batch
from hl_lightning.objectives import group_advantages

log = logging.getLogger(__name__)


def collate_groups(items: list[dict], pad_id: int) -> GroupBatch:
    """Flatten whole groups into N rows; ``group`` numbers the groups of the batch 0, 1, ... in order, the rows
    of a group share its prompt (``rows.shared``), and ``index`` (also the row keys) holds each completion's id."""
    sizes = [len(item["sequences"]) for item in items]
    starts = [sum(sizes[:g]) for g in range(len(sizes))]
    index = [i for item in items for i in item["index"]]
    rows = pad_batch(
        [seq for item in items for seq in item["sequences"]],
        pad_id,
        keys=index,
        shared=[list(range(s, s + n)) for s, n in zip(starts, sizes, strict=True)],
    )
    return GroupBatch(
        rows=rows,
        rewards=torch.tensor([r for item in items for r in item["rewards"]], dtype=torch.float32),
        advantages=torch.tensor([a for item in items for a in item["advantages"]], dtype=torch.float32),
        group=torch.repeat_interleave(torch.arange(len(items)), torch.tensor(sizes)),
        index=torch.tensor(index, dtype=torch.long),
    )


_SCORES = ("chosen_score", "rejected_score")


def _score(row: dict, column: str, default: float) -> Any:
    """A pair's score: ``default`` when the file has no such column; a null in a file that has it is an error."""
    if column not in row:
        return default
    if row[column] is None:
        raise DataError(
            f"column {column!r} has no value in this row; give every pair both scores (chosen_score and "
            "rejected_score) or remove both columns (pairs are then scored +1 / -1)",
            f"missing column {column!r}",
        )
    return row[column]


class GroupDataModule(BaseDataModule):
    """Groups of scored completions per prompt; a batch is ``batch_size`` whole groups, flattened.

    Rows need ``prompt``, ``completions`` and ``rewards``; paired rows (``chosen``, ``rejected``) become
    groups of two with rewards ``chosen_score`` / ``rejected_score`` when the file has both columns, else +1 / -1
    (one of the two columns alone, or a null score in a file that has them, is an error). The
    advantages of each whole group are computed once, in ``setup``. The dataset is indexed by group, so
    a group is never split across batches or (under DDP) across ranks. The builtin "arithmetic" data is
    ``groups_{train,test}.jsonl``.
    """

    builtin = "groups"
    layouts = (GROUPS, PAIRS)
    id_columns = ("id", "prompt_id")  # a group holds all completions of its prompt: a prompt appears once

    def __init__(self, *args: Any, advantage_eps: float = 0.01, **kwargs: Any) -> None:
        """Configure the data (all other arguments as in ``BaseDataModule``).

        Args:
            advantage_eps: added to the population std of a group's rewards when normalising advantages.
        """
        if not advantage_eps > 0:
            raise ValueError(f"advantage_eps={advantage_eps} must be > 0.")
        super().__init__(*args, **kwargs)
        self.advantage_eps = advantage_eps

    def check_file(self, rows: list[dict], source: str) -> Layout | None:
        """The file's layout (see the base class); for pairs, both scores or neither, and the scoring logged."""
        layout = super().check_file(rows, source)
        if layout is PAIRS:
            present = [column for column in _SCORES if any(row.get(column) is not None for row in rows)]
            if len(present) == 1:
                raise DataError(
                    f"{source}: pairs with a {present[0]!r} column but no "
                    f"{next(c for c in _SCORES if c not in present)!r}; give both scores or neither (pairs "
                    "without scores become groups with rewards +1 / -1)"
                )
            scored = "chosen_score and rejected_score" if present else "+1 (chosen) and -1 (rejected)"
            log.info("%s: pairs: each becomes a group of two completions with rewards %s", source, scored)
        return layout

    def prepare_row(self, row: dict) -> list[dict]:
        """Normalise a row into a group, tokenise its completions and compute its advantages."""
        if "completions" not in row and "chosen" in row:
            pair = normalize_pair(row)
            scores = [_score(pair, "chosen_score", 1.0), _score(pair, "rejected_score", -1.0)]
            row = {**pair, "completions": [pair["chosen"], pair["rejected"]], "rewards": scores}
        row = normalize_group(row)
        rewards = torch.tensor(row["rewards"], dtype=torch.float64)
        group = torch.zeros(len(rewards), dtype=torch.long)
        advantages = group_advantages(rewards, group, self.advantage_eps)
        return [
            {
                "sequences": [join(*self.encode(row["prompt"], c)) for c in row["completions"]],
                "rewards": row["rewards"],
                "advantages": advantages.tolist(),
            }
        ]

    def assign_ids(self, items: list[dict]) -> None:
        """Give every completion a unique id: ``index`` of a group is the list of its completions' ids."""
        start = 0
        for item in items:
            item["index"] = list(range(start, start + len(item["sequences"])))
            start += len(item["sequences"])

    def collate_fn(self) -> Callable[[list[dict]], GroupBatch]:
        """:func:`collate_groups` with this tokenizer's pad id."""
        return partial(collate_groups, pad_id=self.pad_id())
