"""The reference half of ``AlignmentModule``: which model the reference is, keeping it frozen, syncing it.

A full copy of the policy (``self.ref``), or with LoRA no copy: ``self.adapters`` runs the reference on the
policy's own base (``hl_lightning.modules.lora``); a reference-free objective has neither.
"""

from __future__ import annotations

import copy

import torch
from typing_extensions import override

from hl_lightning.modules.lora import LoraConfig, LoraReference, wrap_lora


class ReferenceMixin:
    """Reference handling of :class:`hl_lightning.modules.base.AlignmentModule` (mixed in before Lightning's
    module): set ``self.policy`` and ``needs_reference``, then call :meth:`_make_reference`."""

    def _make_reference(self, peft: LoraConfig | None) -> None:
        """``self.ref``: a frozen deep copy of the policy; with ``peft``, no copy (``self.ref`` is None) and
        ``self.adapters`` runs the reference on the policy's own base (``hl_lightning.modules.lora``)."""
        self.adapters: LoraReference | None = None
        self.ref = None
        if peft is not None:
            self.policy = wrap_lora(self.policy, peft)
            self.adapters = LoraReference(self.policy) if self.needs_reference else None
        elif self.needs_reference:
            self.ref = copy.deepcopy(self.policy).eval().requires_grad_(False)

    @property
    def has_reference(self) -> bool:
        """True when the objective runs a reference (a copy, or the LoRA base / reference adapter)."""
        return self.ref is not None or self.adapters is not None

    def enable_reference_sync(self) -> None:
        """Prepare the reference to follow syncs (``RefSyncCallback.setup``): with LoRA, add the reference
        adapter, equal to the trainable one; nothing to do for a full copy."""
        if self.adapters is not None:
            self.adapters.enable_sync()

    @override
    def train(self, mode: bool = True) -> ReferenceMixin:
        super().train(mode)
        if self.ref is not None:
            self.ref.eval()  # the reference never runs dropout
        return self

    @torch.no_grad()
    def sync_reference(self) -> None:
        """Copy the policy's current weights into the reference, by value (``copy_``, no rebinding).

        Goes through ``state_dict`` (parameters and persistent buffers, sharded alike under FSDP2); a tied
        weight appears under two names and is copied twice, which costs a few ms and is harmless.
        """
        if not self.has_reference:
            raise ValueError(f"{type(self).__name__} has no reference to sync (it is reference-free).")
        if self.adapters is not None:
            return self.adapters.sync()
        for ref_t, policy_t in zip(self.ref.state_dict().values(), self.policy.state_dict().values(), strict=True):
            ref_t.copy_(policy_t)

    @property
    def serves_cached_ref_logps(self) -> bool:
        """True when reference log-probs come from a cache; a synced reference would then be ignored."""
        return self.ref_cache is not None

    @override
    def configure_model(self) -> None:
        """Under ``ModelParallelStrategy``, shard policy and reference identically with FSDP2 (per decoder
        layer, then the rest), so a sync copies each rank's own shards, with no gather. No-op otherwise."""
        if self.device_mesh is None or getattr(self, "_sharded", False):
            return
        from torch.distributed.fsdp import fully_shard

        mesh = self.device_mesh["data_parallel"]
        for model in (m for m in (self.policy, self.ref) if m is not None):
            for layer in model.get_decoder().layers:
                fully_shard(layer, mesh=mesh)
            fully_shard(model, mesh=mesh)  # embeddings, final norm and a tied LM head share this unit
        if self.adapters is not None:
            self.adapters.forget_params()  # sharding replaced every parameter
        self._sharded = True

