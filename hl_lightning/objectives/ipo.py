"""Identity Preference Optimization, optionally on humanline-clipped log-ratios."""

from __future__ import annotations

import torch

from hl_lightning.objectives.logratio import ClipLogRatio, log_ratio_metrics, token_log_ratio
from hl_lightning.objectives.types import LossOutput, masked_sum


class IPOLoss:
    """IPO (Azar et al., 2023); humanline IPO when ``clip`` is given (Liu et al., 2025).

    For a pair (chosen ``w``, rejected ``l``) with token log-ratios ``D_t = lp_t - lr_t``::

        r_w  = sum_t m_t * Dc_t / |y_w|  over y_w,   r_l = sum_t m_t * Dc_t / |y_l|  over y_l
        h    = r_w - r_l
        loss = mean_pairs[ (h - 1 / (2 * beta))**2 ]

    where ``Dc_t = clamp(D_t, log_eps_P, log_eps_R)`` with a clip and ``Dc_t = D_t`` without, and
    ``|y| = max(sum_t m_t, 1)`` is the number of real tokens of the completion.

    Length normalisation: HALOs divides the summed token rewards by the number of tokens whose
    (clipped) reward is non-zero, which is 0/0 at step 0 (policy == reference, every ``D_t = 0``) and
    depends on the values, not only on the mask. We divide by the real-token count instead, so step 0
    is well defined (``h = 0``) and a clipped token still counts in the denominator.

    Metrics (detached, means over pairs): ``rewards/chosen`` (beta * r_w), ``rewards/rejected``
    (beta * r_l), ``rewards/accuracies`` (r_w > r_l), ``rewards/margins`` (beta * (r_w - r_l)),
    ``logps/chosen`` and ``logps/rejected`` (summed policy log-probs), ``humanline/abs_log_ratio``
    (mean |D_t| over all real tokens) and, with a clip, ``humanline/unclipped_frac``.

    Args:
        beta: regularisation strength ``tau``; the target margin is ``1 / (2 * beta)``. Must be > 0.
        clip: humanline clip of the token log-ratios, or None for plain IPO.

    Raises:
        ValueError: if ``beta <= 0``.
    """

    def __init__(self, beta: float = 0.1, clip: ClipLogRatio | None = None) -> None:
        if not beta > 0:
            raise ValueError(f"beta must be > 0, got {beta}")
        self.beta = beta
        self.clip = clip

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
        """IPO loss of B pairs; chosen tensors are (B, Tc), rejected ones (B, Tr).

        Args:
            policy_chosen_logps: (B, Tc) policy log-probs of the chosen completions.
            ref_chosen_logps: (B, Tc) reference log-probs of the chosen completions.
            chosen_mask: (B, Tc) bool, True on real chosen tokens.
            policy_rejected_logps: (B, Tr) policy log-probs of the rejected completions.
            ref_rejected_logps: (B, Tr) reference log-probs of the rejected completions.
            rejected_mask: (B, Tr) bool, True on real rejected tokens.

        Returns:
            LossOutput with the scalar mean loss and the metrics listed in the class docstring.
        """
        r_chosen = masked_sum(
            token_log_ratio(policy_chosen_logps, ref_chosen_logps, chosen_mask, self.clip), chosen_mask
        ) / chosen_mask.sum(-1).clamp(min=1)  # (B,)
        r_rejected = masked_sum(
            token_log_ratio(policy_rejected_logps, ref_rejected_logps, rejected_mask, self.clip),
            rejected_mask,
        ) / rejected_mask.sum(-1).clamp(min=1)  # (B,)
        h = r_chosen - r_rejected  # (B,)
        loss = (h - 1 / (2 * self.beta)).pow(2).mean()

        r_chosen, r_rejected, h = r_chosen.detach(), r_rejected.detach(), h.detach()
        metrics = {
            "rewards/chosen": (self.beta * r_chosen).mean(),
            "rewards/rejected": (self.beta * r_rejected).mean(),
            "rewards/accuracies": (r_chosen > r_rejected).float().mean(),
            "rewards/margins": (self.beta * h).mean(),
            "logps/chosen": masked_sum(policy_chosen_logps.detach(), chosen_mask).mean(),
            "logps/rejected": masked_sum(policy_rejected_logps.detach(), rejected_mask).mean(),
        }
        # Chosen and rejected share B but not T: side by side along T, they form one (B, Tc + Tr) batch.
        metrics |= log_ratio_metrics(
            torch.cat([policy_chosen_logps, policy_rejected_logps], dim=1),
            torch.cat([ref_chosen_logps, ref_rejected_logps], dim=1),
            torch.cat([chosen_mask, rejected_mask], dim=1),
            self.clip,
        )
        return LossOutput(loss, metrics)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(beta={self.beta}, clip={self.clip})"
