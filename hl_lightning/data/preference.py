"""Paired preference data (DPO): batches of chosen rows followed by the rejected rows of the same prompts."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch

from hl_lightning.data.base import BaseDataModule
from hl_lightning.data.batches import PairedBatch
from hl_lightning.data.columns import PAIRS
from hl_lightning.data.normalize import normalize_pair
from hl_lightning.data.tokenize import join, pad_batch


def collate_pairs(items: list[dict], pad_id: int) -> PairedBatch:
    """Batch B pairs: ``chosen`` and ``rejected`` rows in pair order, ``index`` one unique id per pair, row keys
    ``2 * index`` (chosen) and ``2 * index + 1`` (rejected) for the reference cache (docs/CONTRACTS.md)."""
    index = [item["index"] for item in items]
    return PairedBatch(
        chosen=pad_batch([item["chosen"] for item in items], pad_id, keys=[2 * i for i in index]),
        rejected=pad_batch([item["rejected"] for item in items], pad_id, keys=[2 * i + 1 for i in index]),
        index=torch.tensor(index, dtype=torch.long),
    )


class PreferenceDataModule(BaseDataModule):
    """Paired preference data: TRL standard, conversational or implicit-prompt rows.

    Rows need ``prompt``, ``chosen`` and ``rejected``. A file without a ``prompt`` column uses the implicit prompt
    only when it has no other text column that could be the prompt (docs/data.md). The builtin
    "arithmetic" data is ``pairs_{train,test}.jsonl``. ``batch_size`` counts pairs.
    """

    builtin = "pairs"
    layouts = (PAIRS,)

    def prepare_row(self, row: dict) -> list[dict]:
        """Normalise a row and tokenise its chosen and rejected conversations."""
        row = normalize_pair(row)
        return [
            {
                "chosen": join(*self.encode(row["prompt"], row["chosen"])),
                "rejected": join(*self.encode(row["prompt"], row["rejected"])),
            }
        ]

    def collate_fn(self) -> Callable[[list[dict]], PairedBatch]:
        """:func:`collate_pairs` with this tokenizer's pad id."""
        return partial(collate_pairs, pad_id=self.pad_id())
