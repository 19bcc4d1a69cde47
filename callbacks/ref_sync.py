"""Humanline syncing: overwrite the reference with the policy every k optimizer steps."""

from __future__ import annotations

from typing import Any, Protocol, cast

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from typing_extensions import override


class _SyncsReference(Protocol):
    """What the callback asks of a module (``hl_lightning.modules.AlignmentModule`` has it)."""

    def sync_reference(self) -> None: ...

    def enable_reference_sync(self) -> None: ...


class RefSyncCallback(Callback):
    """Copy the policy into the reference model every ``every_n_steps`` optimizer steps (humanline syncing).

    When: in ``on_before_optimizer_step``, i.e. after every backward of the step (all accumulated
    micro-batches) and before ``optimizer.step()``, at 0-indexed optimizer steps ``s = 0, k, 2k, ...``
    (HALOs ``research`` branch convention). The copy is by value (``tensor.copy_``), so the reference
    receives θ_s, the weights that produced step ``s``'s loss, and the update of step ``s`` then moves
    only the policy.

    Which weights the reference holds at step ``t`` (θ_t = policy weights used for step t's loss):
        - ``t = 0``: θ_0 (the reference starts as a copy of the initial policy, so every log-ratio is 0);
        - ``t >= 1``: θ_{k * floor((t - 1) / k)}, i.e. it lags the policy by 1 to k steps.
      With k = 1 the reference at step t is exactly the policy of step t - 1.

    Steps are optimizer steps (``trainer.global_step``), not batches: with ``accumulate_grad_batches``
    there is one sync per optimizer step, and a hook that fires per micro-batch (DeepSpeed) syncs once.
    A step the module skips (non-finite loss or gradient, nothing to train on: ``skipping_step``) is not
    synced. The sync phase depends only on ``global_step``, which the checkpoint restores, so a resumed run stays
    in phase; the sync count travels in the checkpoint too. Logs ``humanline/syncs`` (syncs so far).

    Clipping is independent: use this callback without ``clip`` for the sync-only ablation, and ``clip``
    without this callback for clip-only.

    Args:
        every_n_steps: k, the number of optimizer steps between syncs (the paper: 1 for instruction
            following, 12-24 for math). Must be >= 1.
    """

    def __init__(self, every_n_steps: int = 1) -> None:
        if not isinstance(every_n_steps, int) or every_n_steps < 1:
            raise ValueError(
                f"RefSyncCallback(every_n_steps={every_n_steps!r}): every_n_steps must be an integer >= 1 "
                "(1 = sync before every optimizer step). To train without syncing, remove the callback."
            )
        self.every_n_steps = every_n_steps
        self.syncs = 0
        self._last_step_seen = -1

    def should_sync(self, step: int) -> bool:
        """Whether to sync before optimizer step ``step`` (0-indexed). Override for another schedule."""
        return step % self.every_n_steps == 0

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if not callable(getattr(pl_module, "sync_reference", None)):
            raise TypeError(
                f"RefSyncCallback needs a module with a sync_reference() method (an hl_lightning "
                f"AlignmentModule); got {type(pl_module).__name__}."
            )
        if not getattr(pl_module, "has_reference", True):
            raise ValueError(
                f"RefSyncCallback: {type(pl_module).__name__} is reference-free, so there is no reference to sync "
                "and humanline does not apply; remove RefSyncCallback from trainer.callbacks."
            )
        if getattr(pl_module, "serves_cached_ref_logps", False):
            raise ValueError(
                "RefSyncCallback cannot be used with cache_ref_logps=true: cached reference log-probs would "
                "ignore every sync, so the reference would silently stay frozen. Set cache_ref_logps=false "
                "(humanline syncing) or remove RefSyncCallback (a frozen reference with caching)."
            )
        if callable(getattr(pl_module, "enable_reference_sync", None)):
            cast(
                _SyncsReference, pl_module
            ).enable_reference_sync()  # LoRA: the reference adapter, before a checkpoint is restored

    @override
    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        step = trainer.global_step  # optimizer steps completed so far = index of the step about to happen
        if step != self._last_step_seen:
            self._last_step_seen = step
            if self.should_sync(step) and not getattr(pl_module, "skipping_step", False):
                cast(_SyncsReference, pl_module).sync_reference()
                self.syncs += 1
        pl_module.log("humanline/syncs", float(self.syncs), on_step=True, on_epoch=False)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"every_n_steps": self.every_n_steps, "syncs": self.syncs, "last_step_seen": self._last_step_seen}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict["every_n_steps"] != self.every_n_steps:
            raise ValueError(
                f"The checkpoint was trained with RefSyncCallback(every_n_steps={state_dict['every_n_steps']}) "
                f"but this run uses every_n_steps={self.every_n_steps}; resume with the same value."
            )
        self.syncs = state_dict["syncs"]
        self._last_step_seen = state_dict["last_step_seen"]
