"""Paired preference data (DPO): batches of chosen rows followed by the rejected rows of the same prompts."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch

from hl_lightning.data.base import BaseDataModule
from hl_lightning.data.rows import normalize_pair
from hl_lightning.data.tokenize import join, pad_batch


def collate_pairs(items: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Batch B pairs into N = 2B rows: rows [0, B) chosen, rows [B, 2B) rejected, and ``index`` (B,): one
    unique id per pair (docs/CONTRACTS.md)."""
    batch = pad_batch([item["chosen"] for item in items] + [item["rejected"] for item in items], pad_id)
    batch["index"] = torch.tensor([item["index"] for item in items], dtype=torch.long)
    return batch


class PreferenceDataModule(BaseDataModule):
    """Paired preference data: TRL standard, conversational or implicit-prompt rows.

    Rows need ``prompt`` (optional: implicit prompt), ``chosen`` and ``rejected``. The builtin
    "arithmetic" data is ``pairs_{train,test}.jsonl``. ``batch_size`` counts pairs.
    """

    builtin = "pairs"

    def prepare_row(self, row: dict) -> list[dict]:
        """Normalise a row and tokenise its chosen and rejected conversations."""
        row = normalize_pair(row)
        return [{
            "chosen": join(*self.encode(row["prompt"], row["chosen"])),
            "rejected": join(*self.encode(row["prompt"], row["rejected"])),
        }]

    def collate_fn(self) -> Callable[[list[dict]], dict]:
        """:func:`collate_pairs` with this tokenizer's pad id."""
        return partial(collate_pairs, pad_id=self.tokenizer.pad_token_id)
