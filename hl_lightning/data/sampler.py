"""A shuffling sampler whose order depends only on (seed, epoch), so resumed runs replay it."""

from __future__ import annotations

import random
from collections.abc import Iterator

from torch.utils.data import Sampler


class EpochShuffleSampler(Sampler[int]):
    """Yields a permutation of ``range(length)`` that depends only on ``seed`` and the current epoch.

    Lightning calls :meth:`set_epoch` at the start of every epoch, also through the wrapper it adds under
    DDP; that wrapper deals this order out to the ranks (after its own shuffle, seeded by the global seed
    and the epoch), so every rank's order still depends only on the seeds and the epoch.
    """

    def __init__(self, length: int, seed: int = 0) -> None:
        """Create the sampler.

        Args:
            length: number of dataset items.
            seed: base seed; the permutation of epoch ``e`` is seeded by ``(seed, e)``.
        """
        self.length = length
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the permutation of ``epoch``."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[int]:
        order = list(range(self.length))
        random.Random(f"{self.seed}:{self.epoch}").shuffle(order)  # str seeds are hashed stably (sha512)
        return iter(order)
