"""Humanline clipping of per-token log-ratios, and the one function every loss uses to build them."""

from __future__ import annotations

import math

import torch

from hl_lightning.objectives.types import masked_mean

_HINT = (
    "At step 0 the policy equals the reference, so every log-ratio is 0 and the clip interval must "
    "contain 0 (it also keeps padding at 0). Use log_eps_P < 0 < log_eps_R, e.g. the paper's -1.5 / 1.5."
)


class ClipLogRatio:
    """Humanline clipping (Liu, Muennighoff & Ethayarajh, 2025) of per-token log-ratios.

    With ``D_t = log pi_theta(y_t | x, y_<t) - log pi_ref(y_t | x, y_<t)``, ``a = log_eps_P`` and
    ``b = log_eps_R``::

        Dc_t = m_t * clamp(D_t, a, b)
        dDc_t / dtheta = m_t * 1[a <= D_t <= b] * dD_t / dtheta

    A clipped token keeps the value of the bound it hit and gets exactly zero gradient; a token at a
    bound keeps its gradient (``torch.clamp`` is inclusive). Masked positions are exactly 0, in value
    and gradient. The clip is applied to every token before any sum, sigmoid or PPO ratio.

    Args:
        log_eps_P: lower bound ``a`` of the log-ratio; must be < 0.
        log_eps_R: upper bound ``b`` of the log-ratio; must be > 0.

    Raises:
        ValueError: if a bound is not finite, ``log_eps_P >= 0`` or ``log_eps_R <= 0``.
    """

    def __init__(self, log_eps_P: float = -1.5, log_eps_R: float = 1.5) -> None:
        for name, value in (("log_eps_P", log_eps_P), ("log_eps_R", log_eps_R)):
            if not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value}. {_HINT}")
        if log_eps_P >= 0:
            raise ValueError(f"log_eps_P must be < 0, got {log_eps_P}. {_HINT}")
        if log_eps_R <= 0:
            raise ValueError(f"log_eps_R must be > 0, got {log_eps_R}. {_HINT}")
        self.log_eps_P = float(log_eps_P)
        self.log_eps_R = float(log_eps_R)

    def __call__(self, log_ratio: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Clip the log-ratios to ``[log_eps_P, log_eps_R]`` and zero the masked positions.

        Args:
            log_ratio: (B, T) per-token log-ratios ``D``.
            mask: (B, T) bool, True on real completion tokens.

        Returns:
            (B, T) clipped log-ratios, 0 (value and gradient) where ``mask`` is False.
        """
        return torch.where(mask, log_ratio.clamp(self.log_eps_P, self.log_eps_R), 0.0)  # (B, T)

    @torch.no_grad()
    def unclipped_fraction(self, log_ratio: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Fraction of real tokens whose gradient survives the clip: ``a <= D_t <= b``.

        This differs on purpose from HALOs' "unclamped" metric, which drops tokens with ``D_t == 0``
        and uses strict inequalities, and therefore reports 0 at step 0 (policy == reference). Here a
        token counts exactly when it keeps its gradient, so step 0 reports 1.

        Args:
            log_ratio: (B, T) raw (unclipped) per-token log-ratios.
            mask: (B, T) bool, True on real completion tokens.

        Returns:
            Detached scalar in [0, 1]; 1 when there is no real token (nothing was clipped).
        """
        inside = (log_ratio >= self.log_eps_P) & (log_ratio <= self.log_eps_R)  # (B, T)
        return torch.where(mask.any(), masked_mean(inside, mask), 1.0)

    def init_args(self) -> dict:
        """The constructor arguments that rebuild this object (saved in checkpoints)."""
        return {"log_eps_P": self.log_eps_P, "log_eps_R": self.log_eps_R}

    def describe(self) -> str:
        """A short label for run tags: the interval."""
        return f"[{self.log_eps_P}, {self.log_eps_R}]"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(log_eps_P={self.log_eps_P}, log_eps_R={self.log_eps_R})"


def gate_from_spec(spec: dict) -> ClipLogRatio:
    """Rebuild a clip (``ClipLogRatio`` or a subclass such as ``SampleLogRatio``) from ``{"class_path", "init_args"}``
    as a checkpoint stores it (a bare dict of bounds is a ``ClipLogRatio``)."""
    if "class_path" not in spec:
        return ClipLogRatio(**spec)
    module, _, name = spec["class_path"].rpartition(".")
    cls = getattr(__import__(module, fromlist=[name]), name)
    if not (isinstance(cls, type) and issubclass(cls, ClipLogRatio)):
        raise ValueError(f"clip class_path {spec['class_path']!r} is not a ClipLogRatio (or a subclass).")
    return cls(**spec.get("init_args", {}))


def token_log_ratio(
    policy_logps: torch.Tensor,
    ref_logps: torch.Tensor,
    mask: torch.Tensor,
    clip: ClipLogRatio | None,
) -> torch.Tensor:
    """Per-token log-ratio ``D_t = lp_t - lr_t``, humanline-clipped when ``clip`` is given.

    Args:
        policy_logps: (B, T) fp32 policy log-probs (with gradient).
        ref_logps: (B, T) fp32 log-probs of the anchor (reference or old policy).
        mask: (B, T) bool, True on real completion tokens.
        clip: the humanline clip, or None for the raw log-ratio.

    Returns:
        (B, T) log-ratios, exactly 0 (value and gradient) where ``mask`` is False.
    """
    log_ratio = torch.where(mask, policy_logps - ref_logps, 0.0)  # (B, T)
    return clip(log_ratio, mask) if clip is not None else log_ratio


@torch.no_grad()
def log_ratio_metrics(
    policy_logps: torch.Tensor,
    ref_logps: torch.Tensor,
    mask: torch.Tensor,
    clip: ClipLogRatio | None,
) -> dict[str, torch.Tensor]:
    """Humanline diagnostics of the raw log-ratio, shared by every loss.

    Args:
        policy_logps: (B, T) policy log-probs.
        ref_logps: (B, T) anchor log-probs.
        mask: (B, T) bool, True on real completion tokens.
        clip: the humanline clip, or None.

    Returns:
        ``humanline/abs_log_ratio``: mean ``|D_t|`` over real tokens (the reference lag), and, when
        ``clip`` is given, ``humanline/unclipped_frac`` (see ``ClipLogRatio.unclipped_fraction``).
    """
    raw = token_log_ratio(policy_logps, ref_logps, mask, None)  # (B, T)
    metrics = {"humanline/abs_log_ratio": masked_mean(raw.abs(), mask)}
    if clip is not None:
        metrics["humanline/unclipped_frac"] = clip.unclipped_fraction(raw, mask)
    return metrics
