"""The reference model of an objective, owned by one object.

A :class:`Reference` owns the reference's weights, its forward, its sync, whether it currently holds the policy's
weights, and its sharding. ``AlignmentModule.reference`` holds one (None for a reference-free objective):

- :class:`FrozenCopy`: a full frozen copy of the policy (the default);
- ``LoraReference`` (``hl_lightning.modules.lora``): a LoRA policy's own base, with the adapter disabled or a frozen
  second adapter;
- ``CachedReference`` (``hl_lightning.modules.ref_cache``): either of these, with each row's log-probs cached after
  their first computation (a frozen reference only).

Only the module calls a reference's methods: ``RefSyncCallback`` and a new online round ask the module to sync
(``AlignmentModule.sync_reference``); nothing else changes the reference.
"""

from __future__ import annotations

import abc
import copy
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

import torch
from torch.distributed.tensor import DTensor
from torch.nn.modules.dropout import _DropoutNd
from typing_extensions import override

from hl_lightning.models.logprobs import TokenLogps

if TYPE_CHECKING:
    from torch.distributed.device_mesh import DeviceMesh

    from hl_lightning.data.batches import Rows
    from hl_lightning.models.logprobs import CausalLM

Forward = Callable[["CausalLM"], TokenLogps]  # per-token log-probs of the model given, on the rows at hand


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


def local_shard(tensor: torch.Tensor) -> torch.Tensor:
    """This rank's shard of an FSDP2 (DTensor) parameter, else the tensor: policy and reference are sharded
    alike, so a sync copies shard to shard, with no gather."""
    return tensor.to_local() if isinstance(tensor, DTensor) else tensor


def copy_by_value(targets: list[torch.Tensor], sources: list[torch.Tensor]) -> None:
    """One ``_foreach_copy_`` of ``sources`` into ``targets`` (each rank's own shards under FSDP2)."""
    torch._foreach_copy_([local_shard(t) for t in targets], [local_shard(t) for t in sources])


class Reference(torch.nn.Module, abc.ABC):
    """The reference of an objective (see the module docstring). A ``torch.nn.Module``, so its weights move with
    the module and travel in its checkpoints.

    ``holds_policy``: True from a sync until the policy may have changed (:meth:`policy_changed`, at every
    training batch's end): the reference's log-probs are then the policy's own, and the module skips the
    reference forward while the policy runs no dropout (:meth:`equals`)."""

    cached: ClassVar[bool] = False  # True: log-probs served from a cache, so the reference must stay frozen

    def __init__(self) -> None:
        super().__init__()
        self.holds_policy = False

    @abc.abstractmethod
    def logps(self, policy: CausalLM, rows: Rows, forward: Forward) -> TokenLogps:
        """``forward`` run with the reference's weights, under ``no_grad``."""

    @abc.abstractmethod
    def copy_policy(self, policy: CausalLM) -> None:
        """Copy the policy's current weights into the reference, by value."""

    @torch.no_grad()
    def sync(self, policy: CausalLM) -> None:
        """Overwrite the reference with the policy's current weights (humanline syncing, an online round's reset)."""
        self.copy_policy(policy)
        self.holds_policy = True

    def prepare_sync(self, policy: CausalLM) -> None:
        """Get ready to follow syncs (``RefSyncCallback.setup``, or a checkpoint trained with them)."""

    def equals(self, policy: CausalLM) -> bool:
        """True while the reference's log-probs are the policy's own: synced since the policy last changed, and
        the policy runs no dropout."""
        return self.holds_policy and not runs_dropout(policy)

    def policy_changed(self) -> None:
        """Forget that the reference holds the policy (an optimizer step may have moved the policy)."""
        self.holds_policy = False

    def shard(self, mesh: DeviceMesh) -> None:
        """Shard the reference as the policy is sharded (FSDP2, ``configure_model``); nothing to do by default."""


class FrozenCopy(Reference):
    """A full copy of the policy, frozen (no gradients) and always in eval mode (no dropout)."""

    def __init__(self, policy: CausalLM) -> None:
        super().__init__()
        self.model: CausalLM = copy.deepcopy(policy).eval().requires_grad_(False)
        self._pairs: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None

    @override
    def train(self, mode: bool = True) -> FrozenCopy:
        return super().train(False)  # the reference never runs dropout

    @override
    @torch.no_grad()
    def logps(self, policy: CausalLM, rows: Rows, forward: Forward) -> TokenLogps:
        return forward(self.model)

    @override
    def copy_policy(self, policy: CausalLM) -> None:
        copy_by_value(*self._sync_pairs(policy))

    def _sync_pairs(self, policy: CausalLM) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The (reference, policy) tensors a sync copies, matched by name: every parameter once (a tied weight is
        one parameter) and every buffer. Built on the first sync and again after sharding replaced the
        parameters, never walked through ``state_dict``."""
        if self._pairs is None:

            def tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
                return {**dict(model.named_parameters()), **dict(model.named_buffers())}

            ref, live = tensors(self.model), tensors(policy)
            if ref.keys() != live.keys():
                raise RuntimeError(
                    "The reference and the policy no longer have the same tensors "
                    f"({sorted(ref.keys() ^ live.keys())[:3]} ...): cannot sync."
                )
            self._pairs = ([ref[n] for n in live], list(live.values()))
        return self._pairs

    @override
    def shard(self, mesh: DeviceMesh) -> None:
        """Per decoder layer, then the rest, as the policy. FSDP2 keeps a root unit unsharded after its forward
        (for the backward); the reference has no backward, so its root reshards at once: otherwise it would keep
        serving the gathered copy of the weights from before the next sync."""
        from torch.distributed.fsdp import fully_shard

        for layer in self.model.get_decoder().layers:
            fully_shard(layer, mesh=mesh)
        fully_shard(self.model, mesh=mesh, reshard_after_forward=True)
        self._pairs = None
