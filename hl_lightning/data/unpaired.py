"""Unpaired preference data (KTO): items with a desirable flag, plus mismatched pairs for the KL estimate."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

import torch

from hl_lightning.data.base import BaseDataModule
from hl_lightning.data.batches import UnpairedBatch
from hl_lightning.data.columns import PAIRS, UNPAIRED, Layout
from hl_lightning.data.normalize import normalize_pair, normalize_unpaired
from hl_lightning.data.tokenize import join, pad_batch

log = logging.getLogger(__name__)


def collate_unpaired(items: list[dict], pad_id: int, max_length: int) -> UnpairedBatch:
    """Batch B items; the ``kl`` rows pair prompt i with the completion of item (i + 1) % B (cut to
    ``max_length``). Item rows are keyed by ``index`` (cacheable); KL rows, which change with the batch, are not."""
    n = len(items)
    index = [item["index"] for item in items]
    kl = [join(items[i]["prompt_ids"], items[(i + 1) % n]["completion_ids"], max_length) for i in range(n)]
    return UnpairedBatch(
        items=pad_batch([join(item["prompt_ids"], item["completion_ids"]) for item in items], pad_id, keys=index),
        kl=pad_batch(kl, pad_id),
        desirable=torch.tensor([item["desirable"] for item in items], dtype=torch.bool),
        index=torch.tensor(index, dtype=torch.long),
    )


class UnpairedPreferenceDataModule(BaseDataModule):
    """Unpaired preference data: TRL unpaired rows, or pairs split into two items.

    Rows with ``prompt``, ``completion`` and a boolean ``label`` (standard or conversational) are one item
    each; rows with ``chosen`` and ``rejected`` instead (any paired format) give a desirable and an
    undesirable item. The builtin "arithmetic" data is ``unpaired_{train,test}.jsonl``. ``batch_size``
    counts items and must be >= 2 (the KL pairs need another item); the loaders drop a last batch that would
    hold a single item (under DDP a rank's share can still end in one; its KL pair is then itself).
    """

    builtin = "unpaired"
    layouts = (UNPAIRED, PAIRS)
    min_batch_size = 2

    def check_file(self, rows: list[dict], source: str) -> Layout | None:
        """The file's layout (see the base class); pairs are split into items, logged in one line."""
        layout = super().check_file(rows, source)
        if layout is PAIRS:
            log.info("%s: pairs: each gives a desirable item (chosen) and an undesirable one (rejected)", source)
        return layout

    def _item(self, prompt: list, completion: list, desirable: bool) -> dict:
        prompt_ids, completion_ids = self.encode(prompt, completion)
        return {"prompt_ids": prompt_ids, "completion_ids": completion_ids, "desirable": desirable}

    def prepare_row(self, row: dict) -> list[dict]:
        """Normalise a row and tokenise it into one item, or two for a paired row."""
        if "completion" not in row and "chosen" in row:
            row = normalize_pair(row)
            prompt = row["prompt"]
            return [self._item(prompt, row["chosen"], True), self._item(prompt, row["rejected"], False)]
        row = normalize_unpaired(row)
        return [self._item(row["prompt"], row["completion"], row["label"])]

    def setup(self, stage: str | None = None) -> None:
        """Build the items (see the base class) and report the desirable / undesirable ratio."""
        already = self.tokenizer is not None
        super().setup(stage)
        if already:
            return
        desirable = sum(item["desirable"] for item in self.train_set)
        undesirable = len(self.train_set) - desirable
        ratio = desirable / undesirable if undesirable else float("inf")
        log.info("%d desirable and %d undesirable train items (ratio %.2f)", desirable, undesirable, ratio)
        if not 0.5 <= ratio <= 2:
            log.warning(
                "The desirable / undesirable ratio is %.2f, outside [0.5, 2]; KTO may need its "
                "desirable / undesirable loss weights adjusted to compensate.",
                ratio,
            )

    def drop_last(self, n_items: int, train: bool) -> bool:
        """Drop a last batch of a single item (its KL pair would be matched), logged in one line."""
        drop = n_items % self.batch_size == 1
        if drop:
            log.info(
                "%d %s items in batches of %d: the last batch, of 1 item, is dropped (KTO's KL estimate pairs an "
                "item with another one); every epoch reshuffles which item that is",
                n_items,
                "train" if train else "validation",
                self.batch_size,
            )
        return drop

    def collate_fn(self) -> Callable[[list[dict]], UnpairedBatch]:
        """:func:`collate_unpaired` with this tokenizer's pad id and ``max_length``."""
        return partial(collate_unpaired, pad_id=self.pad_id(), max_length=self.max_length)
