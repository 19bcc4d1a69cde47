"""Kahneman-Tversky Optimization, optionally on humanline-clipped log-ratios."""

from __future__ import annotations

import torch

from hl_lightning.objectives.logratio import ClipLogRatio, log_ratio_metrics, token_log_ratio
from hl_lightning.objectives.types import LossOutput, masked_sum


class KTOLoss:
    """KTO (Ethayarajh et al., 2024); humanline KTO when ``clip`` is given (Liu et al., 2025).

    For an unpaired item with token log-ratios ``D_t = lp_t - lr_t`` and a constant KL estimate z0::

        r    = sum_t m_t * Dc_t                                  (no length normalisation)
        L(y) = w_D * (1 - sigmoid(beta * (r - z0)))   if y is desirable
               w_U * (1 - sigmoid(beta * (z0 - r)))   if y is undesirable
        loss = mean over all items of L

    where ``Dc_t = clamp(D_t, log_eps_P, log_eps_R)`` with a clip and ``Dc_t = D_t`` without.

    Metrics (detached): ``kl`` (z0), ``rewards/chosen`` and ``logps/chosen`` (means of beta * r and of
    the summed policy log-probs over desirable items), ``rewards/rejected`` and ``logps/rejected``
    (the same over undesirable items; a group's metrics are omitted when it is empty),
    ``humanline/abs_log_ratio`` and, with a clip, ``humanline/unclipped_frac``.

    Args:
        beta: temperature of the implicit reward; must be > 0.
        desirable_weight: ``w_D``; must be > 0.
        undesirable_weight: ``w_U``; must be > 0.
        clip: humanline clip of the token log-ratios, or None for plain KTO.

    Raises:
        ValueError: if ``beta`` or a weight is not > 0.
    """

    def __init__(
        self,
        beta: float = 0.1,
        desirable_weight: float = 1.0,
        undesirable_weight: float = 1.0,
        clip: ClipLogRatio | None = None,
    ) -> None:
        for name, value in (
            ("beta", beta),
            ("desirable_weight", desirable_weight),
            ("undesirable_weight", undesirable_weight),
        ):
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        self.beta = beta
        self.desirable_weight = desirable_weight
        self.undesirable_weight = undesirable_weight
        self.clip = clip

    def __call__(
        self,
        *,
        policy_logps: torch.Tensor,
        ref_logps: torch.Tensor,
        mask: torch.Tensor,
        desirable: torch.Tensor,
        kl: torch.Tensor,
    ) -> LossOutput:
        """KTO loss of B unpaired items.

        Args:
            policy_logps: (B, T) policy log-probs of the completions.
            ref_logps: (B, T) reference log-probs of the completions.
            mask: (B, T) bool, True on real completion tokens.
            desirable: (B,) bool, True for desirable items, False for undesirable ones.
            kl: scalar KL estimate z0, computed by the caller on mismatched pairs and floored at 0.
                It is a constant of the loss: it is detached here, so no gradient ever flows into it.

        Returns:
            LossOutput with the scalar mean loss and the metrics listed in the class docstring.
        """
        reward = masked_sum(token_log_ratio(policy_logps, ref_logps, mask, self.clip), mask)  # (B,)
        kl = torch.as_tensor(kl, dtype=reward.dtype, device=reward.device).detach()
        desirable = desirable.bool()  # (B,)
        losses = torch.where(
            desirable,
            self.desirable_weight * (1 - torch.sigmoid(self.beta * (reward - kl))),
            self.undesirable_weight * (1 - torch.sigmoid(self.beta * (kl - reward))),
        )  # (B,)
        loss = losses.mean()

        reward = reward.detach()
        logps = masked_sum(policy_logps.detach(), mask)  # (B,)
        metrics = {"kl": kl}
        for group, select in (("chosen", desirable), ("rejected", ~desirable)):
            if select.any():  # omit an empty group rather than logging NaN
                metrics[f"rewards/{group}"] = (self.beta * reward[select]).mean()
                metrics[f"logps/{group}"] = logps[select].mean()
        metrics |= log_ratio_metrics(policy_logps, ref_logps, mask, self.clip)
        return LossOutput(loss, metrics)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(beta={self.beta}, desirable_weight={self.desirable_weight}, "
            f"undesirable_weight={self.undesirable_weight}, clip={self.clip})"
        )
