"""Per-example cache of reference log-probs (``cache_ref_logps``)."""

from __future__ import annotations

from collections.abc import Callable

import torch


class RefLogpCache:
    """Stores each example's reference log-probs (unpadded, on CPU) under its dataset index.

    A batch is served from the cache only when every row is cached; otherwise the reference runs and
    the rows are stored. Rows are keyed by ``(index, row position within the example)`` so a paired
    batch (chosen rows then rejected rows) caches both halves. Valid only while the reference is
    frozen: ``RefSyncCallback`` refuses a module that uses it.
    """

    def __init__(self) -> None:
        self._store: dict[tuple[int, int], torch.Tensor] = {}

    def _keys(self, batch: dict[str, torch.Tensor]) -> list[tuple[int, int]]:
        index = batch["index"].tolist()
        rows_per_example = batch["input_ids"].shape[0] // len(index)
        return [(i, r) for r in range(rows_per_example) for i in index]

    def lookup(self, batch: dict[str, torch.Tensor], compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        """Return (N, T-1) reference log-probs for ``batch``, computing and storing them on a miss."""
        keys = self._keys(batch)
        lengths = batch["attention_mask"][:, 1:].sum(-1).tolist()
        if all(k in self._store for k in keys):
            out = torch.zeros(batch["input_ids"].shape[0], batch["input_ids"].shape[1] - 1)
            for row, (key, n) in enumerate(zip(keys, lengths, strict=True)):
                out[row, :n] = self._store[key]
            return out.to(batch["input_ids"].device)
        logps = compute()
        for row, (key, n) in enumerate(zip(keys, lengths, strict=True)):
            self._store[key] = logps[row, :n].detach().cpu()
        return logps

    def __len__(self) -> int:
        return len(self._store)
