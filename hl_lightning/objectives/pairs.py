"""What every loss on preference pairs with a reference shares: the sequence rewards and the TRL metrics."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from hl_lightning.objectives.logratio import ClipLogRatio, log_ratio_metrics, token_log_ratio
from hl_lightning.objectives.types import LossOutput, masked_sum


def sequence_reward(
    policy_logps: torch.Tensor,
    ref_logps: torch.Tensor,
    mask: torch.Tensor,
    clip: ClipLogRatio | None,
    mean: bool = False,
) -> torch.Tensor:
    """(B,) ``sum_t m_t * Dc_t`` (DPO), or that divided by the real-token count ``max(sum_t m_t, 1)`` (IPO)."""
    reward = masked_sum(token_log_ratio(policy_logps, ref_logps, mask, clip), mask)
    return reward / mask.sum(-1).clamp(min=1) if mean else reward


@torch.no_grad()
def pair_metrics(
    beta: float,
    r_chosen: torch.Tensor,
    r_rejected: torch.Tensor,
    clip: ClipLogRatio | None,
    *,
    policy_chosen_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    chosen_mask: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    rejected_mask: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """Detached means over pairs: ``rewards/chosen`` (beta * r_w), ``rewards/rejected`` (beta * r_l),
    ``rewards/accuracies`` (r_w > r_l), ``rewards/margins`` (beta * (r_w - r_l)), ``logps/chosen`` and
    ``logps/rejected`` (summed policy log-probs), and :func:`log_ratio_metrics` over all real tokens."""
    metrics = {
        "rewards/chosen": (beta * r_chosen).mean(),
        "rewards/rejected": (beta * r_rejected).mean(),
        "rewards/accuracies": (r_chosen > r_rejected).float().mean(),
        "rewards/margins": (beta * (r_chosen - r_rejected)).mean(),
        "logps/chosen": masked_sum(policy_chosen_logps, chosen_mask).mean(),
        "logps/rejected": masked_sum(policy_rejected_logps, rejected_mask).mean(),
    }
    # Chosen and rejected share B but not T: side by side along T, they form one (B, Tc + Tr) batch.
    return metrics | log_ratio_metrics(
        torch.cat([policy_chosen_logps, policy_rejected_logps], dim=1),
        torch.cat([ref_chosen_logps, ref_rejected_logps], dim=1),
        torch.cat([chosen_mask, rejected_mask], dim=1),
        clip,
    )


class PairLoss(ABC):
    """Base of the losses on preference pairs with a reference (DPO, IPO): the shared call, rewards and metrics.

    Subclasses implement ``pair_loss(r_chosen, r_rejected) -> scalar`` and set ``length_normalised`` (sum of the
    clipped token log-ratios, or their mean over real tokens).

    Args:
        beta: the loss's temperature / regularisation; must be > 0.
        clip: humanline clip of the token log-ratios, or None for the plain loss.

    Raises:
        ValueError: if ``beta <= 0``.
    """

    length_normalised = False

    def __init__(self, beta: float = 0.1, clip: ClipLogRatio | None = None) -> None:
        if not beta > 0:
            raise ValueError(f"beta must be > 0, got {beta}")
        self.beta = beta
        self.clip = clip

    @abstractmethod
    def pair_loss(self, r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> torch.Tensor:
        """The scalar loss from the (B,) sequence rewards of the chosen and the rejected completions."""

    def __call__(
        self,
        *,
        policy_chosen_logps: torch.Tensor,
        ref_chosen_logps: torch.Tensor,
        chosen_mask: torch.Tensor,
        policy_rejected_logps: torch.Tensor,
        ref_rejected_logps: torch.Tensor,
        rejected_mask: torch.Tensor,
    ) -> LossOutput:
        """The loss of B pairs and its metrics (:func:`pair_metrics`).

        Args:
            policy_chosen_logps: (B, Tc) policy log-probs of the chosen completions.
            ref_chosen_logps: (B, Tc) reference log-probs of the chosen completions.
            chosen_mask: (B, Tc) bool, True on real chosen tokens.
            policy_rejected_logps: (B, Tr) policy log-probs of the rejected completions.
            ref_rejected_logps: (B, Tr) reference log-probs of the rejected completions.
            rejected_mask: (B, Tr) bool, True on real rejected tokens.
        """
        mean = self.length_normalised
        r_chosen = sequence_reward(policy_chosen_logps, ref_chosen_logps, chosen_mask, self.clip, mean)  # (B,)
        r_rejected = sequence_reward(policy_rejected_logps, ref_rejected_logps, rejected_mask, self.clip, mean)
        metrics = pair_metrics(
            self.beta,
            r_chosen.detach(),
            r_rejected.detach(),
            self.clip,
            policy_chosen_logps=policy_chosen_logps,
            ref_chosen_logps=ref_chosen_logps,
            chosen_mask=chosen_mask,
            policy_rejected_logps=policy_rejected_logps,
            ref_rejected_logps=ref_rejected_logps,
            rejected_mask=rejected_mask,
        )
        return LossOutput(self.pair_loss(r_chosen, r_rejected), metrics)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(beta={self.beta}, clip={self.clip})"
