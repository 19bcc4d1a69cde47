"""The module side of the reference: ``AlignmentModule`` holds one :class:`~hl_lightning.modules.reference.Reference`
and is the only caller of its methods; everything else (``RefSyncCallback``, an online round's reset, a checkpoint)
goes through the methods below."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch
from peft import LoraConfig

from hl_lightning.modules.lora import LoraReference, wrap_lora
from hl_lightning.modules.ref_cache import CachedReference
from hl_lightning.modules.reference import FrozenCopy, Reference

if TYPE_CHECKING:
    from hl_lightning.models.logprobs import CausalLM


class HoldsReference:
    """Mixed into ``AlignmentModule`` (before Lightning's module): ``self.reference`` and the ways to ask it for
    something. Set ``self.policy`` and ``needs_reference``, then call :meth:`_make_reference`."""

    policy: CausalLM
    needs_reference: ClassVar[bool]
    reference: Reference | None
    device_mesh: Any

    def _make_reference(self, peft: LoraConfig | None, cache_ref_logps: bool) -> Reference | None:
        """The reference of this objective: a frozen copy of the policy, or with ``peft`` the policy's own base
        (the policy is wrapped with LoRA here); with ``cache_ref_logps``, cached; None when reference-free."""
        if peft is not None:
            self.policy = wrap_lora(self.policy, peft)
        if not self.needs_reference:
            return None
        reference: Reference = LoraReference() if peft is not None else FrozenCopy(self.policy)
        return CachedReference(reference) if cache_ref_logps else reference

    @property
    def has_reference(self) -> bool:
        """True when the objective runs a reference."""
        return self.reference is not None

    @property
    def ref(self) -> torch.nn.Module | None:
        """The reference's own model when it is a full copy (None for LoRA or a reference-free objective)."""
        reference = getattr(self.reference, "inner", self.reference)
        return reference.model if isinstance(reference, FrozenCopy) else None

    @property
    def adapters(self) -> LoraReference | None:
        """The reference when it runs on a LoRA policy's base (else None)."""
        reference = getattr(self.reference, "inner", self.reference)
        return reference if isinstance(reference, LoraReference) else None

    @property
    def serves_cached_ref_logps(self) -> bool:
        """True when reference log-probs come from a cache; the reference then cannot sync."""
        return self.reference is not None and self.reference.cached

    @property
    def reference_is_policy(self) -> bool:
        """True while the reference's log-probs are the policy's own (synced since the last training batch ended,
        no dropout): ``dual_logps`` then skips the reference forward. An online round that resets the reference
        trains its first step this way, as TRL's GRPO takes its old log-probs from the policy when it steps once
        per rollout."""
        return self.reference is not None and self.reference.equals(self.policy)

    def sync_reference(self) -> None:
        """Copy the policy's current weights into the reference, by value (one ``_foreach_copy_``, shard to shard
        under FSDP2). ``RefSyncCallback`` calls it before ``optimizer.step()``; an online round that resets the
        reference, at the round's first batch."""
        if self.reference is None:
            raise ValueError(f"{type(self).__name__} has no reference to sync (it is reference-free).")
        self.reference.sync(self.policy)

    def enable_reference_sync(self) -> None:
        """Prepare the reference to follow syncs (``RefSyncCallback.setup``): with LoRA, add the reference adapter,
        equal to the trainable one; nothing to do for a full copy."""
        if self.reference is not None:
            self.reference.prepare_sync(self.policy)

    def configure_model(self) -> None:
        """Under ``ModelParallelStrategy``, shard policy and reference identically with FSDP2 (per decoder layer,
        then the rest), so a sync copies each rank's own shards, with no gather. No-op otherwise."""
        if self.device_mesh is None or getattr(self, "_sharded", False):
            return
        from torch.distributed.fsdp import fully_shard

        mesh = self.device_mesh["data_parallel"]
        for layer in self.policy.get_decoder().layers:
            fully_shard(layer, mesh=mesh)
        fully_shard(self.policy, mesh=mesh)
        if self.reference is not None:
            self.reference.shard(mesh)
        self._sharded = True
