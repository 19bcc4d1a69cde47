"""Builders: from one prompt's scored completions to what an objective trains on (no model, no Lightning).

A builder is the online half of an objective's data spec (``hl_lightning.modules.spec``): it decides what a
prompt's ``G`` completions contribute (a *unit*: a pair, a few unpaired items, a group), collates units with
the offline collate function into the objective's typed batch, and writes the same selection as TRL-format
rows for ``hl-lightning-sample``. Pick one by ``class_path`` (``builder:`` of ``OnlineDataModule``,
``--builder`` of ``hl-lightning-sample``); by default the module's spec picks it.

- :class:`PairBuilder` (DPO, IPO, SimPO): the best vs the worst completion; the prompt is dropped when their
  reward gap is at most ``min_gap`` (HALOs' ``--feedback_mode max --threshold 0.01``).
- :class:`BestWorstItems` (KTO): the best as desirable, the worst as undesirable, dropped like a pair.
- :class:`ThresholdItems` (KTO): every completion, desirable when its reward is above ``threshold``.
- :class:`GroupBuilder` (GRPO): all completions with group-relative advantages ``(r - mean) / (std + eps)``;
  a group of equal rewards gets advantages of exactly 0 (never NaN), and is never dropped.

Ties are broken deterministically: the first index wins (``rewards.index(max(rewards))``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

import torch

from hl_lightning.data.batches import GroupBatch, PairedBatch, UnpairedBatch
from hl_lightning.data.groups import collate_groups
from hl_lightning.data.preference import collate_pairs
from hl_lightning.data.tokenize import join
from hl_lightning.data.unpaired import collate_unpaired
from hl_lightning.objectives import group_advantages


def _check(rewards: list[float]) -> None:
    if len(rewards) < 2:
        raise ValueError(f"need the rewards of at least 2 completions of a prompt, got {len(rewards)}.")


def best_worst_pairs(rewards: list[float], min_gap: float = 0.01) -> tuple[int, int] | None:
    """The (best, worst) completion indices of one prompt, or None when the prompt is dropped.

    Args:
        rewards: one reward per completion of the prompt (at least 2).
        min_gap: the prompt is dropped when ``max(rewards) - min(rewards) <= min_gap``; must be >= 0, so a
            kept pair always has ``best != worst``.
    """
    _check(rewards)
    if min_gap < 0:
        raise ValueError(f"min_gap={min_gap} must be >= 0.")
    best, worst = max(rewards), min(rewards)
    if best - worst <= min_gap:
        return None
    return rewards.index(best), rewards.index(worst)


def threshold_labels(rewards: list[float], threshold: float) -> list[tuple[int, bool]]:
    """Every completion of one prompt as ``(index, desirable)``, desirable when its reward is > ``threshold``."""
    _check(rewards)
    return [(i, r > threshold) for i, r in enumerate(rewards)]


def group_advantages_of(rewards: list[float], eps: float = 0.01) -> list[float]:
    """Group-relative advantages of all completions of one prompt (``hl_lightning.objectives.group_advantages``)."""
    _check(rewards)
    values = torch.tensor(rewards, dtype=torch.float64)
    return group_advantages(values, torch.zeros(len(rewards), dtype=torch.long), eps).tolist()


class Builder:
    """Base of the builders. Subclasses set ``batch`` (the typed batch they produce) and implement ``unit``,
    ``collate`` and ``trl_rows``; ``why_dropped`` explains, for error messages, why prompts were dropped."""

    batch: ClassVar[type]

    def unit(self, prompt_ids: list[int], completion_ids: list[list[int]], rewards: list[float]):
        """What one prompt contributes (its chat-template prompt ids, each completion's generated ids and
        reward), or None when it is dropped."""
        raise NotImplementedError

    def collate(self, units: list, pad_id: int, max_length: int, ids: Iterator[int]):
        """One typed batch from the units of a micro-batch; ``ids`` is an endless source of unique ids."""
        raise NotImplementedError

    def trl_rows(self, row: dict, texts: list[str], rewards: list[float]) -> list[dict]:
        """The TRL-format rows (for the offline data modules) of one prompt row's scored completions."""
        raise NotImplementedError

    def why_dropped(self) -> str:
        """Why a prompt can be dropped, and what to change ("" when no prompt is ever dropped)."""
        return ""


def _extra(row: dict) -> dict:
    return {k: v for k, v in row.items() if k != "prompt"}


class PairBuilder(Builder):
    """Best vs worst completion of a prompt, as a DPO pair (also IPO and SimPO).

    Args:
        min_gap: a prompt is dropped when its best and worst rewards differ by at most this (>= 0).
    """

    batch = PairedBatch

    def __init__(self, min_gap: float = 0.01) -> None:
        if not min_gap >= 0:
            raise ValueError(f"PairBuilder(min_gap={min_gap}): min_gap must be >= 0, e.g. 0.01.")
        self.min_gap = min_gap

    def unit(self, prompt_ids, completion_ids, rewards):
        pair = best_worst_pairs(rewards, self.min_gap)
        if pair is None:
            return None
        best, worst = pair
        return {"chosen": join(prompt_ids, completion_ids[best]), "rejected": join(prompt_ids, completion_ids[worst])}

    def collate(self, units, pad_id, max_length, ids) -> PairedBatch:
        return collate_pairs([{**unit, "index": next(ids)} for unit in units], pad_id)

    def trl_rows(self, row, texts, rewards):
        pair = best_worst_pairs(rewards, self.min_gap)
        if pair is None:
            return []
        i, j = pair
        return [
            {
                "prompt": row["prompt"],
                "chosen": texts[i],
                "rejected": texts[j],
                "chosen_score": rewards[i],
                "rejected_score": rewards[j],
                **_extra(row),
            }
        ]

    def why_dropped(self) -> str:
        return (
            f"their completions all got rewards within min_gap={self.min_gap} of each other, so the reward "
            "cannot tell them apart"
        )

    def __repr__(self) -> str:
        return f"PairBuilder(min_gap={self.min_gap})"


class UnpairedBuilder(Builder):
    """Base of the KTO builders: ``labels`` picks ``(index, desirable)`` items; units are collated with items
    of different prompts next to each other, so KTO's KL pairs (item i's prompt, item i+1's completion) are
    mismatched whenever a batch holds two or more prompts."""

    batch = UnpairedBatch

    def labels(self, rewards: list[float]) -> list[tuple[int, bool]]:
        """``[(completion index, desirable), ...]`` of one prompt; empty when it is dropped."""
        raise NotImplementedError

    def unit(self, prompt_ids, completion_ids, rewards):
        items = [
            {"prompt_ids": prompt_ids, "completion_ids": completion_ids[i], "desirable": desirable}
            for i, desirable in self.labels(rewards)
        ]
        return items or None

    def collate(self, units, pad_id, max_length, ids) -> UnpairedBatch:
        width = max(map(len, units))
        items = [unit[k] for k in range(width) for unit in units if k < len(unit)]  # (position, unit) order
        return collate_unpaired([{**item, "index": next(ids)} for item in items], pad_id, max_length)

    def trl_rows(self, row, texts, rewards):
        return [
            {"prompt": row["prompt"], "completion": texts[k], "label": desirable, "score": rewards[k], **_extra(row)}
            for k, desirable in self.labels(rewards)
        ]


class BestWorstItems(UnpairedBuilder):
    """KTO items from the best (desirable) and the worst (undesirable) completion of a prompt (HALOs online).

    Args:
        min_gap: a prompt is dropped when its best and worst rewards differ by at most this (>= 0).
    """

    def __init__(self, min_gap: float = 0.01) -> None:
        if not min_gap >= 0:
            raise ValueError(f"BestWorstItems(min_gap={min_gap}): min_gap must be >= 0, e.g. 0.01.")
        self.min_gap = min_gap

    def labels(self, rewards):
        pair = best_worst_pairs(rewards, self.min_gap)
        return [] if pair is None else [(pair[0], True), (pair[1], False)]

    def why_dropped(self) -> str:
        return (
            f"their completions all got rewards within min_gap={self.min_gap} of each other; ThresholdItems "
            "keeps every completion"
        )

    def __repr__(self) -> str:
        return f"BestWorstItems(min_gap={self.min_gap})"


class ThresholdItems(UnpairedBuilder):
    """KTO items from every completion of a prompt, desirable when its reward is above ``threshold``.

    Args:
        threshold: the reward level that separates desirable (>) from undesirable (<=) completions.
    """

    def __init__(self, threshold: float = 0.5) -> None:
        self.threshold = threshold

    def labels(self, rewards):
        return threshold_labels(rewards, self.threshold)

    def __repr__(self) -> str:
        return f"ThresholdItems(threshold={self.threshold})"


class GroupBuilder(Builder):
    """All completions of a prompt as a GRPO group with group-relative advantages.

    Args:
        advantage_eps: added to the population std of a group's rewards when normalising (> 0).
        drop_uniform: drop a prompt whose completions all got the same reward (its advantages are all 0: it
            teaches nothing). Off by default, as in TRL and HALOs online; on for offline data sets
            (``hl-lightning-sample``), where such groups would only take batch slots.
    """

    batch = GroupBatch

    def __init__(self, advantage_eps: float = 0.01, drop_uniform: bool = False) -> None:
        if not advantage_eps > 0:
            raise ValueError(f"GroupBuilder(advantage_eps={advantage_eps}): advantage_eps must be > 0, e.g. 0.01.")
        self.advantage_eps = advantage_eps
        self.drop_uniform = drop_uniform

    def _dropped(self, rewards: list[float]) -> bool:
        return self.drop_uniform and min(rewards) == max(rewards)

    def why_dropped(self) -> str:
        if not self.drop_uniform:
            return ""
        return "their completions all got the same reward (drop_uniform=True); sample more completions per prompt"

    def unit(self, prompt_ids, completion_ids, rewards):
        if self._dropped(rewards):
            return None
        return {
            "sequences": [join(prompt_ids, ids) for ids in completion_ids],
            "rewards": list(rewards),
            "advantages": group_advantages_of(rewards, self.advantage_eps),
        }

    def collate(self, units, pad_id, max_length, ids) -> GroupBatch:
        groups = [{**unit, "index": [next(ids) for _ in unit["sequences"]]} for unit in units]
        return collate_groups(groups, pad_id)

    def trl_rows(self, row, texts, rewards):
        if self._dropped(rewards):
            return []
        return [{"prompt": row["prompt"], "completions": texts, "rewards": rewards, **_extra(row)}]

    def __repr__(self) -> str:
        drop = ", drop_uniform=True" if self.drop_uniform else ""
        return f"GroupBuilder(advantage_eps={self.advantage_eps}{drop})"
