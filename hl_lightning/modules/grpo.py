"""GRPO (Shao et al., 2024) as a LightningModule, offline from scored groups; humanline adds clip and sync."""

from __future__ import annotations

from typing import Any, ClassVar

from hl_lightning.data.batches import GroupBatch
from hl_lightning.modules.base import AlignmentModule
from hl_lightning.modules.spec import GROUPED
from hl_lightning.objectives import GRPOLoss, LossOutput


class GRPOModule(AlignmentModule):
    """Group Relative Policy Optimization on scored groups (``GroupDataModule``, or ``OnlineDataModule``).

    Each completion carries the advantage of its whole group, ``(r - mean_g) / (std_g + eps)``, computed by
    the data module. The PPO ratio and the KL term are measured against the reference: the initial model
    without ``RefSyncCallback`` (HALOs' offline GRPO: a trust region around the initial model), the synced,
    lagged reference with it (humanline GRPO). With ``share_prompt`` a group's prompt runs once.

    Logs ``reward`` and ``reward_std`` (mean and std of the batch's rewards), ``clip_ratio``, ``kl`` and,
    with a clip, ``humanline/unclipped_frac``.

    Args:
        epsilon: PPO clip range: the ratio is clamped to [1 - epsilon, 1 + epsilon].
        kl_beta: coefficient of the k3 KL penalty to the reference (0 disables it).
        **kwargs: the shared options of ``AlignmentModule`` (model, clip, optimizer, ...).
    """

    spec = GROUPED
    plot_metrics: ClassVar[list[str]] = ["loss", "reward", "clip_ratio", "kl", "humanline/abs_log_ratio"]

    def __init__(self, epsilon: float = 0.2, kl_beta: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.objective = GRPOLoss(epsilon=epsilon, kl_beta=kl_beta, clip=self.clip)

    def compute_loss(self, batch: GroupBatch) -> LossOutput:
        """GRPO loss and metrics for a batch of whole groups."""
        policy, ref = self.dual_logps(batch.rows)
        assert ref is not None, "GRPO runs a reference"
        out = self.objective(
            policy_logps=policy.logps, ref_logps=ref.logps, mask=policy.mask, advantages=batch.advantages
        )
        rewards = batch.rewards.float()
        out.metrics.update({"reward": rewards.mean(), "reward_std": rewards.std(unbiased=False)})
        return out
