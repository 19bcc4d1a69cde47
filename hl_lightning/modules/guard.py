"""The non-finite guard: a step whose loss or gradients are not finite is skipped, never applied or synced."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import torch
from lightning.pytorch import LightningModule

if TYPE_CHECKING:
    from hl_lightning.models.logprobs import CausalLM

log = logging.getLogger(__name__)


class SkipGuard(LightningModule):
    """Skips optimizer steps that must not happen: a non-finite loss or gradient, or nothing to train on.

    After every backward (``on_after_backward``) the gradients of the policy are checked; a non-finite
    loss, a non-finite gradient norm, or a batch with nothing to train on (``SkippedBatch``) marks the
    current optimizer step as skipped. The mark is agreed by every rank (a max-reduce), so all ranks skip
    together. A skipped step: ``RefSyncCallback`` does not sync (it reads :attr:`skipping_step`), every
    gradient is dropped before ``optimizer.step()`` (so AdamW changes no weight and no moment), and the LR
    scheduler still steps with ``global_step``, so the LR at step t is always the schedule's value at t.
    Logged as ``train/skipped_steps`` (so far); a warning names the step, the reason and the batch's
    example indices; ``max_consecutive_skips`` skips in a row stop the run with an error.
    """

    max_consecutive_skips: int = 10
    policy: CausalLM

    def _guard_init(self, max_consecutive_skips: int) -> None:
        if max_consecutive_skips < 1:
            raise ValueError(f"max_consecutive_skips={max_consecutive_skips} must be >= 1, e.g. 10.")
        self.max_consecutive_skips = max_consecutive_skips
        self.skipping_step, self.skipped_steps, self._consecutive_skips = False, 0, 0
        self._skip_reason, self._skip_indices = "", list[int]()

    def mark_skip(self, reason: str, indices: list[int]) -> None:
        """Mark the current optimizer step as skipped (the first reason of the step is reported)."""
        if not self.skipping_step:
            self._skip_reason, self._skip_indices = reason, indices
        self.skipping_step = True

    @torch.no_grad()
    def _grads_finite(self) -> bool:
        grads = [p.grad for p in self.policy.parameters() if p.grad is not None]
        if not grads:
            return True
        local = [g.to_local() if hasattr(g, "to_local") else g for g in grads]
        return bool(torch.isfinite(torch.stack(torch._foreach_norm(local))).all())

    def on_after_backward(self) -> None:
        """Check this backward's gradients and agree on the step's skip mark across ranks."""
        if not self._grads_finite():
            self.mark_skip("non-finite gradient norm", self._skip_indices)
        flag = torch.tensor(float(self.skipping_step), device=self.device)
        if self._trainer is not None and self.trainer.world_size > 1:
            flag = self.trainer.strategy.reduce(flag, reduce_op="max")
        if flag.item() and not self.skipping_step:
            self.mark_skip("another rank skipped this step", [])

    def on_before_optimizer_step(self, optimizer: Any) -> None:
        """Drop every gradient of a skipped step, so ``optimizer.step()`` changes nothing. Under ``16-mixed`` the
        gradient scaler first records its overflow check (an optimizer that unscales inside its own step, such as
        fused AdamW, has not been unscaled yet), so it skips the step and lowers its scale as it would have."""
        if not self.skipping_step:
            return
        scaler = getattr(self.trainer.precision_plugin, "scaler", None)
        if scaler is not None and getattr(optimizer, "_step_supports_amp_scaling", False):
            scaler.unscale_(optimizer)
        optimizer.zero_grad(set_to_none=True)

    def optimizer_step(self, epoch: int, batch_idx: int, optimizer: Any, optimizer_closure: Any = None) -> None:
        """Run the step (the closure runs the forward, backward and the hooks above), then account for a skip."""
        optimizer.step(closure=optimizer_closure)
        if not self.skipping_step:
            self._consecutive_skips = 0
            return
        self.skipped_steps += 1
        self._consecutive_skips += 1
        log.warning(
            "Skipped optimizer step %d (%s; batch example indices %s): no update, no sync.",
            self.trainer.global_step,
            self._skip_reason,
            self._skip_indices,
        )
        self.skipping_step = False
        if self._consecutive_skips >= self.max_consecutive_skips:
            raise RuntimeError(
                f"{self._consecutive_skips} optimizer steps in a row were skipped (last: {self._skip_reason} at step "
                f"{self.trainer.global_step}, examples {self._skip_indices}). Lower the learning rate, set "
                "trainer.gradient_clip_val, check the data for broken rows, or raise max_consecutive_skips."
            )
