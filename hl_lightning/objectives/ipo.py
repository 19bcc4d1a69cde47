"""Identity Preference Optimization, optionally on humanline-clipped log-ratios."""

from __future__ import annotations

import torch

from hl_lightning.objectives.pairs import PairLoss


class IPOLoss(PairLoss):
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

    length_normalised = True

    def pair_loss(self, r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> torch.Tensor:
        """``mean_pairs[(r_w - r_l - 1 / (2 * beta))**2]``."""
        return (r_chosen - r_rejected - 1 / (2 * self.beta)).pow(2).mean()
