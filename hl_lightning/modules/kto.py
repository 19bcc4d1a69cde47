"""KTO (Ethayarajh et al., 2024) as a LightningModule; humanline KTO adds the clip and the sync."""

from __future__ import annotations

from typing import Any

import torch

from hl_lightning.models.logprobs import completion_logps
from hl_lightning.modules.base import AlignmentModule
from hl_lightning.objectives import KTOLoss, LossOutput, token_log_ratio


class KTOModule(AlignmentModule):
    """Kahneman-Tversky Optimization on unpaired batches (``UnpairedPreferenceDataModule``).

    The KL term is estimated the KTO way: each item's prompt is paired with the completion of another
    item of the batch (the ``kl_*`` rows), policy and reference are run on these mismatched pairs under
    ``no_grad``, and the same (clipped, under humanline) summed log-ratio is averaged over all pairs of
    all ranks, floored at 0, and passed to the loss as a constant. Under humanline the KL pairs are
    clipped too and measured against the synced reference, so the estimate stays near 0 (spec H.21).

    Args:
        beta: KTO temperature.
        desirable_weight: weight w_D of the desirable items' loss (the paper's runs: 1.1 for KTO).
        undesirable_weight: weight w_U of the undesirable items' loss.
        **kwargs: the shared options of ``AlignmentModule`` (model, clip, optimizer, ...).
    """

    def __init__(self, beta: float = 0.1, desirable_weight: float = 1.0, undesirable_weight: float = 1.0,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.objective = KTOLoss(beta=beta, desirable_weight=desirable_weight,
                                 undesirable_weight=undesirable_weight, clip=self.clip)

    @torch.no_grad()
    def kl_mean(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean (clipped) summed log-ratio over the mismatched pairs of every rank (before the floor)."""
        if batch["kl_input_ids"].shape[0] < 2:
            raise ValueError(
                "KTO needs at least 2 items per batch on each process to build mismatched (prompt, other "
                "completion) pairs for its KL estimate; raise data.batch_size to 2 or more."
            )
        policy = completion_logps(self.policy, batch["kl_input_ids"], batch["kl_attention_mask"],
                                  batch["kl_completion_mask"])
        ref = self.ref_logps(batch, prefix="kl_")
        rewards = token_log_ratio(policy.logps, ref, policy.mask, self.clip).sum(-1)  # (B,)
        total = torch.stack([rewards.sum(), torch.tensor(float(len(rewards)), device=rewards.device)])
        total = self.trainer.strategy.reduce(total, reduce_op="sum") if self._trainer is not None else total
        return total[0] / total[1]

    def kl_estimate(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """KTO's reference point z0: ``kl_mean`` floored at 0, a constant (no gradient)."""
        return self.kl_mean(batch).clamp(min=0)

    def compute_loss(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        """KTO loss and metrics for an unpaired batch."""
        policy, ref = self.dual_logps(batch)
        return self.objective(policy_logps=policy.logps, ref_logps=ref, mask=policy.mask,
                              desirable=batch["desirable"], kl=self.kl_estimate(batch))
