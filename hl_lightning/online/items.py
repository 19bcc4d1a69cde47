"""From scored completions to the offline modules' items and batches (reusing their collate functions).

A *unit* is what one kept prompt contributes: a pair (DPO), a few unpaired items (KTO) or a group (GRPO).
Sequences are the policy's own token ids: the chat-template prompt ids followed by the generated ids
(end-of-turn token included when one was generated), so the objective scores exactly what was sampled.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import torch

from hl_lightning.data.groups import collate_groups
from hl_lightning.data.preference import collate_pairs
from hl_lightning.data.tokenize import join
from hl_lightning.data.unpaired import collate_unpaired
from hl_lightning.online.builders import Objective


def make_unit(objective: Objective, prompt_ids: list[int], completion_ids: list[list[int]],
              rewards: list[float], selection) -> dict | list[dict]:
    """The items of one kept prompt, in the format of the offline data module for ``objective``.

    Args:
        objective: "dpo", "kto" or "grpo".
        prompt_ids: the chat-template prompt's token ids.
        completion_ids: the generated ids of each completion of the prompt.
        rewards: the reward of each completion.
        selection: what :func:`hl_lightning.online.builders.select` returned for these rewards (not None).
    """
    if objective == "dpo":
        best, worst = selection
        return {"chosen": join(prompt_ids, completion_ids[best]), "rejected": join(prompt_ids, completion_ids[worst])}
    if objective == "kto":
        return [{"prompt_ids": prompt_ids, "completion_ids": completion_ids[i], "desirable": desirable}
                for i, desirable in selection]
    return {"sequences": [join(prompt_ids, ids) for ids in completion_ids], "rewards": list(rewards),
            "advantages": list(selection)}


def deal(units: list, num_batches: int) -> list[list]:
    """Deal units round-robin into ``num_batches`` lists (sizes differ by at most one)."""
    return [units[i::num_batches] for i in range(num_batches)]


def _interleave(units: list[list[dict]]) -> list[dict]:
    """KTO items ordered (position in unit, unit): neighbours come from different prompts whenever a batch
    holds two or more, so the KL pairs (item i's prompt, item i+1's completion) are mismatched."""
    width = max(map(len, units))
    return [unit[k] for k in range(width) for unit in units if k < len(unit)]


def collate_units(objective: Objective, units: list, pad_id: int, max_length: int,
                  ids: Iterator[int]) -> dict[str, torch.Tensor]:
    """Collate units into one batch with the offline collate function of ``objective``.

    Args:
        objective: "dpo", "kto" or "grpo".
        units: the units of one micro-batch (from :func:`make_unit`).
        pad_id: the tokenizer's pad id.
        max_length: the longest KTO KL row (prompt + another item's completion) is cut to this.
        ids: an endless source of unique example ids (``index`` of the batch contract).
    """
    if objective == "dpo":
        return collate_pairs([{**unit, "index": next(ids)} for unit in units], pad_id)
    if objective == "kto":
        return collate_unpaired([{**item, "index": next(ids)} for item in _interleave(units)], pad_id, max_length)
    groups = [{**unit, "index": [next(ids) for _ in unit["sequences"]]} for unit in units]
    return collate_groups(groups, pad_id)


class PromptStream:
    """An endless, seeded stream of prompt indices, sharded over ranks.

    The global stream visits all ``n`` prompts in a seeded random order, then again in a new order, and so
    on; rank ``r`` of ``world`` takes the global positions ``r, r + world, r + 2 world, ...``, so ranks never
    sample the same prompt at the same time and each rank samples its own share.

    Args:
        n: number of prompts.
        seed: base seed; pass ``e`` over the prompts is shuffled with ``random.Random(seed + e)``.
        rank: this process's rank.
        world: number of processes.
    """

    def __init__(self, n: int, seed: int = 0, rank: int = 0, world: int = 1) -> None:
        if n < 1:
            raise ValueError("PromptStream needs at least one prompt.")
        self.n, self.seed, self.rank, self.world = n, seed, rank, world
        self.position = 0  # how many indices this rank has taken
        self._order: tuple[int, list[int]] = (-1, [])

    def _at(self, global_position: int) -> int:
        epoch, offset = divmod(global_position, self.n)
        if self._order[0] != epoch:
            order = list(range(self.n))
            random.Random(self.seed + epoch).shuffle(order)
            self._order = (epoch, order)
        return self._order[1][offset]

    def take(self, k: int) -> list[int]:
        """The next ``k`` prompt indices of this rank."""
        start = self.position
        self.position += k
        return [self._at((start + i) * self.world + self.rank) for i in range(k)]
