"""The reference half of ``AlignmentModule``: which model the reference is, keeping it frozen, syncing it.

A full copy of the policy (``self.ref``), or with LoRA no copy: ``self.adapters`` runs the reference on the
policy's own base (``hl_lightning.modules.lora``); a reference-free objective has neither.
"""

from __future__ import annotations

import copy

import torch
from torch.nn.modules.dropout import _DropoutNd
from typing_extensions import override

from hl_lightning.modules.lora import LoraConfig, LoraReference, local_shard, wrap_lora


def runs_dropout(model: torch.nn.Module) -> bool:
    """True when ``model`` is in training mode with a dropout active: a dropout module with ``p > 0``, or a
    config field named for dropout (``attention_dropout``, ``hidden_dropout``, ``resid_pdrop`` ...) above 0."""
    if not model.training:
        return False
    if any(isinstance(m, _DropoutNd) and m.p > 0 for m in model.modules()):
        return True
    fields = getattr(getattr(model, "config", None), "__dict__", {})  # a Hugging Face config's fields
    return any(
        ("dropout" in name or "pdrop" in name) and isinstance(value, int | float) and value > 0
        for name, value in fields.items()
    )


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
        """Copy the policy's current weights into the reference, by value: one ``_foreach_copy_`` over the
        parameters and buffers (:meth:`_sync_pairs`), each tensor once, shard to shard under FSDP2."""
        if not self.has_reference:
            raise ValueError(f"{type(self).__name__} has no reference to sync (it is reference-free).")
        if self.adapters is not None:
            self.adapters.sync()
        else:
            ref, policy = self._sync_pairs()
            torch._foreach_copy_([local_shard(t) for t in ref], [local_shard(t) for t in policy])
        self._ref_is_policy = True

    @property
    def reference_is_policy(self) -> bool:
        """True while the reference's log-probs are the policy's own: synced since the last training batch ended
        (:meth:`policy_may_have_changed`) and the policy runs no dropout. ``dual_logps`` then skips the reference
        forward: an online round that resets the reference trains its first step this way, as TRL's GRPO takes
        its old log-probs from the policy when it steps once per rollout."""
        return getattr(self, "_ref_is_policy", False) and not runs_dropout(self.policy)

    def policy_may_have_changed(self) -> None:
        """Forget that the reference equals the policy: at every training batch's end (an optimizer step, which
        runs before it, moves the policy; ``RefSyncCallback`` syncs before that step)."""
        self._ref_is_policy = False

    def _sync_pairs(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The (reference, policy) tensors a sync copies, matched by name: every parameter once (a tied weight
        is one parameter: ``named_parameters`` lists it once) and every buffer. Built on the first sync and again
        after sharding (:meth:`configure_model` replaces the parameters), never walked through ``state_dict``."""
        if getattr(self, "_pairs", None) is None:

            def tensors(model):
                return {**dict(model.named_parameters()), **dict(model.named_buffers())}

            ref, policy = tensors(self.ref), tensors(self.policy)
            if ref.keys() != policy.keys():
                raise RuntimeError(
                    f"{type(self).__name__}: the reference and the policy no longer have the same "
                    f"tensors ({sorted(ref.keys() ^ policy.keys())[:3]} ...): cannot sync."
                )
            self._pairs = ([ref[n] for n in policy], list(policy.values()))
        return self._pairs

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
            # embeddings, final norm and a tied LM head share the root unit. FSDP2 keeps a root unsharded after
            # its forward (for the backward); the reference has no backward, so its root reshards at once:
            # otherwise it would keep serving the gathered copy of the weights from before the next sync.
            fully_shard(model, mesh=mesh, reshard_after_forward=True if model is self.ref else None)
        if self.adapters is not None:
            self.adapters.forget_params()  # sharding replaced every parameter
        self._pairs = None
        self._sharded = True
