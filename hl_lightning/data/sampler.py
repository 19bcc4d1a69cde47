"""Shuffled, rank-sharded and resumable: the training sampler of every data module."""

from __future__ import annotations

from collections.abc import Iterator

from torch.utils.data import DataLoader, DistributedSampler


class ResumableSampler(DistributedSampler):
    """A ``DistributedSampler`` over ``range(length)`` that can start mid-epoch after a resume.

    The order of epoch ``e`` depends only on ``(seed, e)`` (Lightning calls ``set_epoch``), and each rank
    takes its own shard, so Lightning keeps this sampler under DDP instead of wrapping it. After a resume,
    ``skip_next(n)`` drops the first ``n`` indices of this rank's next epoch: the ones already trained on.

    Args:
        length: number of dataset items.
        seed: base seed of the per-epoch shuffle.
        num_replicas: number of processes (ranks).
        rank: this process's rank.
    """

    def __init__(self, length: int, seed: int = 0, num_replicas: int = 1, rank: int = 0) -> None:
        # DistributedSampler only takes len() of its dataset; its annotation asks for a Dataset.
        super().__init__(range(length), num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)  # type: ignore[arg-type]
        self._skip = 0

    def skip_next(self, n: int) -> None:
        """Skip the first ``n`` indices of the next iteration (once)."""
        self._skip = n

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())[self._skip :]
        self._skip = 0
        return iter(indices)


class ResumableDataLoader(DataLoader):
    """A ``DataLoader`` that tells Lightning it resumes mid-epoch correctly.

    The position itself is saved and restored by the data module (``BaseDataModule.state_dict``), which
    knows how many batches the trainer consumed; this class only marks the loader as resumable.
    """

    def state_dict(self) -> dict:
        """Nothing to save here: the data module holds the epoch position."""
        return {}

    def load_state_dict(self, state_dict: dict) -> None:
        """Nothing to restore here: the data module restores the epoch position."""
