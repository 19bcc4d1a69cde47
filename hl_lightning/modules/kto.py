"""KTO (Ethayarajh et al., 2024) as a LightningModule; humanline KTO adds the clip and the sync."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from hl_lightning.data.batches import UnpairedBatch
from hl_lightning.models.logprobs import TokenLogps
from hl_lightning.modules.base import AlignmentModule
from hl_lightning.modules.spec import UNPAIRED
from hl_lightning.objectives import KTOLoss, LossOutput, token_log_ratio


class KTOModule(AlignmentModule):
    """Kahneman-Tversky Optimization on unpaired items (``UnpairedPreferenceDataModule``, or ``OnlineDataModule``).

    The KL term is estimated the KTO way: each item's prompt is paired with the completion of another
    item of the batch (the batch's ``kl`` rows), policy and reference are scored on these mismatched pairs
    without gradient, and the same (clipped, under humanline) summed log-ratio is averaged over all pairs of
    all ranks, floored at 0, and passed to the loss as a constant. The average divides the sum by the number of
    all KL rows, as TRL does; HALOs divides it by the number of KL rows whose sum is nonzero. Under humanline the
    KL pairs are clipped too and measured against the synced reference, so the estimate stays near 0 (the lagged
    reference is close to the policy). With ``share_prompt`` an item and its KL row (whose prompt is the item's
    own) run the prompt once.

    Args:
        beta: KTO temperature.
        desirable_weight: weight w_D of the desirable items' loss (the paper's runs: 1.1 for KTO).
        undesirable_weight: weight w_U of the undesirable items' loss.
        **kwargs: the shared options of ``AlignmentModule`` (model, clip, optimizer, ...).
    """

    spec = UNPAIRED
    plot_metrics: ClassVar[list[str]] = ["loss", "kl", "rewards/chosen", "rewards/rejected", "humanline/abs_log_ratio"]

    def __init__(
        self, beta: float = 0.1, desirable_weight: float = 1.0, undesirable_weight: float = 1.0, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.objective = KTOLoss(
            beta=beta, desirable_weight=desirable_weight, undesirable_weight=undesirable_weight, clip=self.clip
        )

    @torch.no_grad()
    def kl_mean(self, policy: TokenLogps, ref: TokenLogps) -> torch.Tensor:
        """Mean (clipped) summed log-ratio of the KL rows over every rank (before the floor), a constant."""
        rewards = token_log_ratio(policy.logps, ref.logps, policy.mask, self.clip).sum(-1)  # (B,)
        total = torch.stack(
            [rewards.sum(), torch.tensor(float(len(rewards)), dtype=rewards.dtype, device=rewards.device)]
        )
        total = self.trainer.strategy.reduce(total, reduce_op="sum") if self._trainer is not None else total
        return total[0] / total[1]

    def item_and_kl_logps(self, batch: UnpairedBatch) -> tuple[TokenLogps, TokenLogps, TokenLogps, TokenLogps]:
        """``(policy items, reference items, policy KL rows, reference KL rows)``; the KL ones carry no gradient.

        One forward covers items and KL rows; with ``cache_ref_logps`` the item rows run on their own, so the
        reference can serve them from the cache (the KL rows change with every batch)."""
        if len(batch) < 2:
            raise ValueError(
                "KTO needs at least 2 items per batch on each process to build mismatched (prompt, "
                "other completion) pairs for its KL estimate; raise data.batch_size to 2 or more."
            )
        if not self.serves_cached_ref_logps:
            (items, kl), ref = self.split_dual(batch.rows(), [batch.items, batch.kl])
            assert ref is not None, "KTO runs a reference"
            return items, ref[0], kl.detach(), ref[1]
        items, ref_items = self.dual_logps(batch.items)
        with torch.no_grad():
            kl, ref_kl = self.dual_logps(batch.kl)
        assert ref_items is not None and ref_kl is not None, "KTO runs a reference"
        return items, ref_items, kl, ref_kl

    def compute_loss(self, batch: UnpairedBatch) -> LossOutput:
        """KTO loss and metrics for a batch of unpaired items."""
        items, ref_items, kl, ref_kl = self.item_and_kl_logps(batch)
        z0 = self.kl_mean(kl, ref_kl).clamp(min=0)  # KTO's reference point: floored at 0, no gradient
        return self.objective(
            policy_logps=items.logps, ref_logps=ref_items.logps, mask=items.mask, desirable=batch.desirable, kl=z0
        )
