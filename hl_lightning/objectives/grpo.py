"""Group Relative Policy Optimization, optionally on humanline-clipped ratios, and its advantages."""

from __future__ import annotations

import torch

from hl_lightning.objectives.logratio import ClipLogRatio, log_ratio_metrics, token_log_ratio
from hl_lightning.objectives.types import LossOutput, masked_mean


class GRPOLoss:
    """GRPO (Shao et al., 2024) token loss; humanline GRPO when ``clip`` is given (Liu et al., 2025).

    With anchor log-probs ``la_t`` (``old_logps`` if given, else the reference ``lr_t``), advantages
    ``A_i`` and ``D_t = lp_t - lr_t``::

        rho_t = exp(clamp(lp_t - la_t, log_eps_P, log_eps_R))        # exp(lp_t - la_t) without a clip
        l_t   = -min(A_i * rho_t, A_i * clamp(rho_t, 1 - eps, 1 + eps))
                + kl_beta * (exp(-D_t) + D_t - 1)                    # k3 KL on the *unclipped* D_t
        loss  = sum_{i,t} m_t * l_t / sum_{i,t} m_t                  # token mean over the batch

    The humanline clip gates the surrogate's gradient token by token; the KL term always keeps its
    gradient and is always measured against the reference, even when ``old_logps`` is the anchor.

    Metrics (detached): ``clip_ratio`` (fraction of real tokens where PPO's clip binds:
    ``rho < 1 - eps`` with ``A < 0``, or ``rho > 1 + eps`` with ``A > 0``), ``kl`` (mean k3 over real
    tokens), ``humanline/abs_log_ratio`` and, with a clip, ``humanline/unclipped_frac`` (both of the
    log-ratio to the anchor, the one that is clipped).

    Args:
        epsilon: PPO clip range; must be in (0, 1).
        kl_beta: weight of the k3 KL penalty; must be >= 0.
        clip: humanline clip of the token log-ratios, or None for plain GRPO.

    Raises:
        ValueError: if ``epsilon`` is not in (0, 1) or ``kl_beta < 0``.
    """

    def __init__(self, epsilon: float = 0.2, kl_beta: float = 0.0, clip: ClipLogRatio | None = None) -> None:
        if not 0 < epsilon < 1:
            raise ValueError(f"epsilon must be in (0, 1), got {epsilon}")
        if not kl_beta >= 0:
            raise ValueError(f"kl_beta must be >= 0, got {kl_beta}")
        self.epsilon = epsilon
        self.kl_beta = kl_beta
        self.clip = clip

    def __call__(
        self,
        *,
        policy_logps: torch.Tensor,
        ref_logps: torch.Tensor,
        mask: torch.Tensor,
        advantages: torch.Tensor,
        old_logps: torch.Tensor | None = None,
    ) -> LossOutput:
        """GRPO loss of B completions.

        Args:
            policy_logps: (B, T) policy log-probs of the completions.
            ref_logps: (B, T) reference log-probs (KL term; also the ratio's anchor by default).
            mask: (B, T) bool, True on real completion tokens.
            advantages: (B,) per-completion advantages (see ``group_advantages``).
            old_logps: (B, T) behaviour-policy log-probs to anchor the ratio to, or None for the reference.

        Returns:
            LossOutput with the scalar token-mean loss and the metrics listed in the class docstring.
        """
        anchor = ref_logps if old_logps is None else old_logps
        ratio = token_log_ratio(policy_logps, anchor, mask, self.clip).exp()  # (B, T), 1 at padding
        adv = advantages[:, None]  # (B, 1)
        low, high = 1 - self.epsilon, 1 + self.epsilon
        per_token = -torch.min(adv * ratio, adv * ratio.clamp(low, high))  # (B, T)
        log_ratio_ref = token_log_ratio(policy_logps, ref_logps, mask, None)  # (B, T), unclipped
        k3 = torch.exp(-log_ratio_ref) + log_ratio_ref - 1  # (B, T), 0 at padding
        if self.kl_beta > 0:  # skipped at 0, so an overflowing k3 cannot turn the loss into NaN
            per_token = per_token + self.kl_beta * k3
        loss = masked_mean(per_token, mask)

        ratio, adv = ratio.detach(), adv.detach()
        binds = ((ratio < low) & (adv < 0)) | ((ratio > high) & (adv > 0))  # (B, T)
        metrics = {"clip_ratio": masked_mean(binds, mask), "kl": masked_mean(k3.detach(), mask)}
        metrics |= log_ratio_metrics(policy_logps, anchor, mask, self.clip)
        return LossOutput(loss, metrics)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(epsilon={self.epsilon}, kl_beta={self.kl_beta}, clip={self.clip})"


def group_advantages(rewards: torch.Tensor, group_ids: torch.Tensor, eps: float = 0.01) -> torch.Tensor:
    """Group-normalised advantages, as in HALOs' GRPO::

        A_i = (s_i - mean_g(s)) / (std_g(s) + eps)

    where g is the set of items sharing ``group_ids[i]`` and std is the population std (ddof=0).
    Rewards are shifted by their group's maximum first, so a group of one or a group of equal rewards
    gets exactly 0 (never NaN), and large rewards lose no precision. Group ids need not be contiguous.

    Args:
        rewards: (N,) scalar rewards ``s``.
        group_ids: (N,) integer group (prompt) id of each item.
        eps: added to the std; must be > 0.

    Returns:
        (N,) advantages, same dtype as ``rewards``.

    Raises:
        ValueError: if ``eps <= 0`` or the inputs are not two 1-D tensors of the same length.
    """
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    if rewards.dim() != 1 or rewards.shape != group_ids.shape:
        raise ValueError(
            f"need 1-D rewards and group_ids of equal length, got {list(rewards.shape)}, {list(group_ids.shape)}"
        )
    _, group, counts = torch.unique(group_ids, return_inverse=True, return_counts=True)  # (N,), (G,)
    zeros = rewards.new_zeros(len(counts))  # (G,)
    top = zeros.scatter_reduce(0, group, rewards, "amax", include_self=False)  # (G,)
    shifted = rewards - top[group]  # (N,), exactly 0 where all rewards of a group are equal
    mean = zeros.index_add(0, group, shifted) / counts  # (G,)
    centred = shifted - mean[group]  # (N,)
    std = (zeros.index_add(0, group, centred**2) / counts).sqrt()  # (G,)
    return centred / (std[group] + eps)
