"""Simple Preference Optimization: reference-free, on length-normalised policy log-probs."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hl_lightning.objectives.types import LossOutput, masked_sum


class SimPOLoss:
    """SimPO (Meng, Xia & Chen, 2024): a reference-free margin loss on length-normalised log-probs.

    For a pair (chosen ``w``, rejected ``l``) with policy log-probs ``lp_t`` and mask ``m_t``::

        a_w  = sum_t m_t * lp_t / |y_w|  over y_w,   a_l = sum_t m_t * lp_t / |y_l|  over y_l
        loss = mean_pairs[ -log sigmoid(beta * (a_w - a_l) - gamma) ]

    where ``|y| = max(sum_t m_t, 1)``, so a row without any real token gives ``a = 0`` instead of 0/0.

    There is no reference model, hence no log-ratio ``D_t = lp_t - lr_t`` to clip: humanline clipping
    does not apply to SimPO and this loss takes no ``clip`` argument (nor reports ``humanline/*``).

    Metrics (detached, means over pairs): ``rewards/chosen`` (beta * a_w), ``rewards/rejected``
    (beta * a_l), ``rewards/accuracies`` (a_w > a_l), ``rewards/margins`` (beta * (a_w - a_l), without
    gamma), ``logps/chosen`` and ``logps/rejected`` (summed, not length-normalised, policy log-probs).

    Args:
        beta: scale of the length-normalised reward; must be > 0 (the paper uses 2.0 to 10.0).
        gamma: target reward margin; must be >= 0 (0 gives a length-normalised, reference-free DPO).

    Raises:
        ValueError: if ``beta <= 0`` or ``gamma < 0``.
    """

    def __init__(self, beta: float = 2.0, gamma: float = 1.0) -> None:
        if not beta > 0:
            raise ValueError(f"beta must be > 0, got {beta}")
        if not gamma >= 0:
            raise ValueError(f"gamma must be >= 0, got {gamma}")
        self.beta = beta
        self.gamma = gamma

    def __call__(
        self,
        *,
        policy_chosen_logps: torch.Tensor,
        chosen_mask: torch.Tensor,
        policy_rejected_logps: torch.Tensor,
        rejected_mask: torch.Tensor,
    ) -> LossOutput:
        """SimPO loss of B pairs; chosen tensors are (B, Tc), rejected ones (B, Tr).

        Args:
            policy_chosen_logps: (B, Tc) policy log-probs of the chosen completions.
            chosen_mask: (B, Tc) bool, True on real chosen tokens.
            policy_rejected_logps: (B, Tr) policy log-probs of the rejected completions.
            rejected_mask: (B, Tr) bool, True on real rejected tokens.

        Returns:
            LossOutput with the scalar mean loss and the metrics listed in the class docstring.
        """
        sum_chosen = masked_sum(policy_chosen_logps, chosen_mask)  # (B,)
        sum_rejected = masked_sum(policy_rejected_logps, rejected_mask)  # (B,)
        a_chosen = sum_chosen / chosen_mask.sum(-1).clamp(min=1)  # (B,)
        a_rejected = sum_rejected / rejected_mask.sum(-1).clamp(min=1)  # (B,)
        margin = self.beta * (a_chosen - a_rejected)  # (B,)
        loss = -F.logsigmoid(margin - self.gamma).mean()

        a_chosen, a_rejected, margin = a_chosen.detach(), a_rejected.detach(), margin.detach()
        metrics = {
            "rewards/chosen": (self.beta * a_chosen).mean(),
            "rewards/rejected": (self.beta * a_rejected).mean(),
            "rewards/accuracies": (a_chosen > a_rejected).float().mean(),
            "rewards/margins": margin.mean(),
            "logps/chosen": sum_chosen.detach().mean(),
            "logps/rejected": sum_rejected.detach().mean(),
        }
        return LossOutput(loss, metrics)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(beta={self.beta}, gamma={self.gamma})"
