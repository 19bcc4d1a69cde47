"""The batch contract: the typed batches every data module produces and every objective module consumes.

A batch is a dataclass of tensors, so Lightning moves it to the device like a dict. Token rows are
:class:`Rows` (right-padded ``prompt | completion | padding``); each layout names its rows by role
(``PairedBatch.chosen`` / ``.rejected``, ``UnpairedBatch.items`` / ``.kl``, ``GroupBatch.rows``) and says
which rows continue the same prompt (``Rows.shared``), so no module slices rows by convention.

Write your own data module by returning these from its ``collate_fn`` (``docs/CONTRACTS.md``; an example:
``docs/guides/own-data.md``). A batch of the wrong type fails with :class:`BatchError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

CONTRACT = "docs/CONTRACTS.md (section 'Batches')"


class BatchError(TypeError):
    """A batch does not fit the objective's layout; the message names what is missing and the contract."""


@dataclass
class Rows:
    """Right-padded token rows, each ``prompt | completion | padding``.

    Attributes:
        input_ids: (N, T) long token ids (pad id where ``attention_mask`` is 0).
        attention_mask: (N, T) long, 1 on real tokens.
        completion_mask: (N, T) bool, True on completion tokens (the end-of-turn token included).
        keys: (N,) long, a dataset-unique id per row (the reference log-prob cache is keyed by it), or None
            when the rows are not cacheable (e.g. KTO's KL rows, which change with the batch).
        shared: groups of row indices that continue the same prompt; ``share_prompt`` runs each group's
            prompt once. Empty: every row runs on its own.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    completion_mask: torch.Tensor
    keys: torch.Tensor | None = None
    shared: list[list[int]] = field(default_factory=list)

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    @property
    def width(self) -> int:
        """T, the padded length."""
        return self.input_ids.shape[1]

    @classmethod
    def cat(cls, parts: Sequence[Rows], shared: list[list[int]] | None = None) -> Rows:
        """Stack row sets (right-padded to one width) into one, for a single forward pass.

        Args:
            parts: the row sets, in order; part ``i`` becomes rows ``[sum(len(parts[:i])), ...)``.
            shared: groups of rows (indices into the result) that continue the same prompt.
        """
        width = max(p.width for p in parts)

        def stack(name: str) -> torch.Tensor:  # pads with 0 / False: masked out everywhere
            return torch.cat([F.pad(getattr(p, name), (0, width - p.width)) for p in parts])

        keys = [p.keys for p in parts if p.keys is not None]
        cat_keys = torch.cat(keys) if len(keys) == len(parts) else None
        return cls(stack("input_ids"), stack("attention_mask"), stack("completion_mask"), cat_keys, shared or [])


def require(batch: object, expected: type, module: str) -> None:
    """Raise :class:`BatchError` unless ``batch`` is an ``expected`` batch (named for ``module``)."""
    if isinstance(batch, expected):
        return
    found = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
    raise BatchError(
        f"{module} trains on {expected.__name__} batches (hl_lightning.data.{expected.__name__}), but the data "
        f"module gave {found}. Return {expected.__name__}(...) from your collate_fn; fields and shapes: {CONTRACT}."
    )


@dataclass(kw_only=True)
class DataSide:
    """What every batch carries besides its tensors.

    Attributes:
        reset_reference: True on the first batch of an online round that resets the reference: the module syncs
            its reference to the policy before training on it (the data side never changes the model).
    """

    log: dict[str, float] = field(default_factory=dict)
    reset_reference: bool = False


@dataclass
class PairedBatch(DataSide):
    """B preference pairs (DPO, IPO, SimPO).

    Attributes:
        chosen: (B, T) the preferred completion of each prompt.
        rejected: (B, T') the other completion of the same prompts, in the same order.
        index: (B,) long, a dataset-unique id per pair.
    """

    chosen: Rows
    rejected: Rows
    index: torch.Tensor

    def __len__(self) -> int:
        return len(self.index)

    def rows(self) -> Rows:
        """Chosen then rejected rows, each pair's two rows sharing its prompt: one forward for both."""
        n = len(self)
        return Rows.cat([self.chosen, self.rejected], shared=[[b, b + n] for b in range(n)])


@dataclass
class UnpairedBatch(DataSide):
    """B unpaired items with a desirable flag, and KTO's mismatched KL rows.

    Attributes:
        items: (B, T) prompt + completion of each item.
        kl: (B, T') item i's prompt with the completion of item (i + 1) % B, for the KL estimate.
        desirable: (B,) bool, True for a desirable completion.
        index: (B,) long, a dataset-unique id per item.
    """

    items: Rows
    kl: Rows
    desirable: torch.Tensor
    index: torch.Tensor

    def __len__(self) -> int:
        return len(self.index)

    def rows(self) -> Rows:
        """Item rows then KL rows; item i and KL row i share item i's prompt."""
        n = len(self)
        return Rows.cat([self.items, self.kl], shared=[[i, i + n] for i in range(n)])


@dataclass
class GroupBatch(DataSide):
    """Whole groups of scored completions (GRPO), flattened to N rows.

    Attributes:
        rows: (N, T) every completion of every group; ``rows.shared`` lists each group's rows.
        rewards: (N,) float, the reward of each completion.
        advantages: (N,) float, group-relative advantages, computed from each *whole* group.
        group: (N,) long, the group of each row, 0, 1, ... in order.
        index: (N,) long, a dataset-unique id per completion.
    """

    rows: Rows
    rewards: torch.Tensor
    advantages: torch.Tensor
    group: torch.Tensor
    index: torch.Tensor

    def __len__(self) -> int:
        return len(self.index)


@dataclass
class SkippedBatch(DataSide):
    """Stands in for a batch when there is nothing to train on (an online round that kept no prompt): the
    module skips that optimizer step (no update, no sync) and logs ``log``."""

    def __len__(self) -> int:
        return 0


def to_state(batch) -> dict:
    """A batch as plain data (tensors, lists, floats) for a checkpoint: ``{"type": name, "fields": {...}}``."""
    from dataclasses import asdict

    return {"type": type(batch).__name__, "fields": asdict(batch)}


def from_state(state: dict):
    """The batch saved by :func:`to_state`."""
    cls = {c.__name__: c for c in (PairedBatch, UnpairedBatch, GroupBatch, SkippedBatch)}[state["type"]]
    fields: dict[str, Any] = {
        k: Rows(**v) if isinstance(v, dict) and "input_ids" in v else v for k, v in state["fields"].items()
    }
    return cls(**fields)
