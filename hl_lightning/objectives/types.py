"""The return type shared by every objective, and masked reductions over (B, T) token tensors."""

from __future__ import annotations

from typing import NamedTuple

import torch


class LossOutput(NamedTuple):
    """What an objective returns.

    Attributes:
        loss: scalar tensor to back-propagate.
        metrics: detached scalar tensors keyed by their logging name (e.g. ``"rewards/chosen"``).
    """

    loss: torch.Tensor
    metrics: dict[str, torch.Tensor]


def masked_sum(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum of ``x`` over the real tokens of each row.

    Masked positions are selected away (not multiplied by 0), so even non-finite values there never
    reach the result or its gradient.

    Args:
        x: (B, T) values.
        mask: (B, T) bool, True on real tokens.

    Returns:
        (B,) per-row sums; 0 for a row without real tokens.
    """
    return torch.where(mask, x, 0.0).sum(-1)  # (B,)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over all real tokens of the batch.

    Args:
        x: (B, T) values (bool values are averaged as 0/1).
        mask: (B, T) bool, True on real tokens.

    Returns:
        Scalar tensor; 0 when there is no real token.
    """
    x = x.float() if x.dtype == torch.bool else x
    return masked_sum(x, mask).sum() / mask.sum().clamp(min=1)
