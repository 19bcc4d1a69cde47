"""The prompt stream of online mode (seeded, endless, sharded over ranks) and how units fill batches."""

from __future__ import annotations

import random


def deal(units: list, num_batches: int) -> list[list]:
    """Deal units round-robin into ``num_batches`` lists (sizes differ by at most one)."""
    return [units[i::num_batches] for i in range(num_batches)]


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
