"""A frozen reference whose per-row log-probs are cached (``cache_ref_logps``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from typing_extensions import override

from hl_lightning.data.batches import Rows
from hl_lightning.models.logprobs import TokenLogps
from hl_lightning.modules.reference import Forward, Reference

if TYPE_CHECKING:
    from torch.distributed.device_mesh import DeviceMesh

    from hl_lightning.models.logprobs import CausalLM


class CachedReference(Reference):
    """Wraps a frozen reference and stores each row's log-probs (unpadded, on CPU) under its dataset-unique key
    (``Rows.keys``).

    A row set is served from the cache only when every row is cached; otherwise the wrapped reference runs and
    the rows are stored. Rows without keys (KTO's KL rows, which change with the batch) are never cached. Valid
    only while the reference is frozen: it cannot sync (``RefSyncCallback`` and online mode refuse it).
    """

    cached = True

    def __init__(self, inner: Reference) -> None:
        super().__init__()
        self.inner = inner
        self._store: dict[int, torch.Tensor] = {}

    @override
    def logps(self, policy: CausalLM, rows: Rows, forward: Forward) -> TokenLogps:
        """(N, T-1) reference log-probs for ``rows``, computed by the wrapped reference and stored on a miss."""
        if rows.keys is None:
            return self.inner.logps(policy, rows, forward)
        keys = rows.keys.tolist()
        lengths = rows.attention_mask[:, 1:].sum(-1).tolist()
        if all(k in self._store for k in keys):
            mask = rows.completion_mask[:, 1:] & rows.attention_mask[:, 1:].bool()
            out = torch.zeros(len(rows), rows.width - 1, dtype=torch.float32)
            for row, (key, n) in enumerate(zip(keys, lengths, strict=True)):
                out[row, :n] = self._store[key]
            return TokenLogps(out.to(rows.input_ids.device), mask)
        logps = self.inner.logps(policy, rows, forward)
        for row, (key, n) in enumerate(zip(keys, lengths, strict=True)):
            self._store[key] = logps.logps[row, :n].detach().cpu()
        return logps

    @override
    def copy_policy(self, policy: CausalLM) -> None:
        raise ValueError(
            "cache_ref_logps=true keeps the reference frozen: cached log-probs would ignore a sync. Set "
            "cache_ref_logps=false to sync the reference."
        )

    @override
    def shard(self, mesh: DeviceMesh) -> None:
        self.inner.shard(mesh)

    @property
    def rows_cached(self) -> int:
        """How many rows' log-probs are stored."""
        return len(self._store)
