"""Per-row cache of reference log-probs (``cache_ref_logps``)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from hl_lightning.data.batches import Rows
from hl_lightning.models.logprobs import TokenLogps


class RefLogpCache:
    """Stores each row's reference log-probs (unpadded, on CPU) under its dataset-unique key (``Rows.keys``).

    A row set is served from the cache only when every row is cached; otherwise the reference runs and the
    rows are stored. Rows without keys (KTO's KL rows, which change with the batch) are never cached. Valid
    only while the reference is frozen: ``RefSyncCallback`` refuses a module that uses it.
    """

    def __init__(self) -> None:
        self._store: dict[int, torch.Tensor] = {}

    def lookup(self, rows: Rows, compute: Callable[[], TokenLogps]) -> TokenLogps:
        """Return (N, T-1) reference log-probs for ``rows``, computing and storing them on a miss."""
        keys = rows.keys.tolist()
        lengths = rows.attention_mask[:, 1:].sum(-1).tolist()
        mask = rows.completion_mask[:, 1:] & rows.attention_mask[:, 1:].bool()
        if all(k in self._store for k in keys):
            out = torch.zeros(len(rows), rows.width - 1)
            for row, (key, n) in enumerate(zip(keys, lengths, strict=True)):
                out[row, :n] = self._store[key]
            return TokenLogps(out.to(rows.input_ids.device), mask)
        logps = compute()
        for row, (key, n) in enumerate(zip(keys, lengths, strict=True)):
            self._store[key] = logps.logps[row, :n].detach().cpu()
        return logps

    def __len__(self) -> int:
        return len(self._store)
