"""Direct Preference Optimization, optionally on humanline-clipped log-ratios."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hl_lightning.objectives.pairs import PairLoss


class DPOLoss(PairLoss):
    """DPO (Rafailov et al., 2023); humanline DPO when ``clip`` is given (Liu et al., 2025).

    For a pair (chosen ``w``, rejected ``l``) with token log-ratios ``D_t = lp_t - lr_t``::

        r_w  = sum_t m_t * Dc_t  over y_w,   r_l = sum_t m_t * Dc_t  over y_l   (no length normalisation)
        loss = mean_pairs[ -log sigmoid(beta * (r_w - r_l)) ]

    where ``Dc_t = clamp(D_t, log_eps_P, log_eps_R)`` with a clip and ``Dc_t = D_t`` without.

    Metrics (detached, means over pairs): ``rewards/chosen`` (beta * r_w), ``rewards/rejected``
    (beta * r_l), ``rewards/accuracies`` (r_w > r_l), ``rewards/margins`` (beta * (r_w - r_l)),
    ``logps/chosen`` and ``logps/rejected`` (summed policy log-probs), ``humanline/abs_log_ratio``
    (mean |D_t| over all real tokens) and, with a clip, ``humanline/unclipped_frac``.

    Args:
        beta: temperature of the implicit reward; must be > 0.
        clip: humanline clip of the token log-ratios, or None for plain DPO.

    Raises:
        ValueError: if ``beta <= 0``.
    """

    def pair_loss(self, r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> torch.Tensor:
        """``mean_pairs[-log sigmoid(beta * (r_w - r_l))]``."""
        return -F.logsigmoid(self.beta * (r_chosen - r_rejected)).mean()
