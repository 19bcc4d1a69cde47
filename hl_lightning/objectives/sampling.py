"""Humanline sampling (paper section 4): token-wise rejection of log-ratios with Beta thresholds.

A drop-in alternative to :class:`~hl_lightning.objectives.ClipLogRatio` (the same ``clip:`` slot of every
module, the same YAML switch): instead of clamping a token's log-ratio to a fixed interval, each token is
rejected at random, with a probability that grows with how surprising it is, and a rejected token keeps its
value but loses its gradient.
"""

from __future__ import annotations

import math

import torch

from hl_lightning.objectives.logratio import ClipLogRatio
from hl_lightning.objectives.types import masked_mean


class SampleLogRatio(ClipLogRatio):
    """Two-sided humanline sampling of per-token log-ratios ``D_t`` (rho_t = exp(D_t)).

    Per batch, over its real tokens: ``M_P = max_t rho_t`` and ``M_R = max_t 1 / rho_t``. Per token, independent
    ``B_P ~ Beta(gamma_P, 1)`` and ``B_R ~ Beta(gamma_R, 1)`` (drawn as ``U ** (1 / gamma)`` from uniforms). Token
    t is rejected when::

        rho_t < M_P * B_P      or      1 / rho_t < M_R * B_R

    A rejected token keeps its value ``D_t`` with the gradient removed (``D_t.detach()``, as in the paper: not
    zeroed, not deleted, so sequences stay whole); a kept token passes ``D_t`` unchanged. Masked positions are 0.
    ``M`` is taken over real tokens only (padding, whose ratio is 1, would hold both ``M`` at 1 or more).

    The limit that recovers clipping (``deterministic=True``): the draws replaced by their means
    ``gamma / (1 + gamma)``, a token is kept iff ``M_P gamma_P / (1 + gamma_P) <= rho_t <= (1 + gamma_R) /
    (M_R gamma_R)``: a fixed interval whose tokens outside get exactly zero gradient, as under ``ClipLogRatio``
    with those bounds (values differ: sampling keeps ``D_t``, clipping the bound).

    The draws come from this object's own generator, seeded with ``seed``; its state travels in the module's
    checkpoint (``state_dict``), so a resumed run draws what the uninterrupted one would.

    Args:
        gamma_P: shape of ``B_P`` (HALOs' last default 0.5); must be > 0.
        gamma_R: shape of ``B_R`` (HALOs' last default 0.01); must be > 0.
        seed: seed of the generator of the draws.
        deterministic: use the means of the draws instead of draws (the clipping limit).
    """

    def __init__(self, gamma_P: float = 0.5, gamma_R: float = 0.01, seed: int = 0, deterministic: bool = False) -> None:
        for name, value in (("gamma_P", gamma_P), ("gamma_R", gamma_R)):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"SampleLogRatio({name}={value}): {name} must be a finite number > 0, e.g. 0.5.")
        super().__init__()  # the interval of the parent is unused; log_eps_* stay for tags and messages
        self.gamma_P, self.gamma_R, self.seed, self.deterministic = float(gamma_P), float(gamma_R), seed, deterministic
        self.generator = torch.Generator().manual_seed(seed)
        self._kept, self._seen = 0.0, 0.0

    def thresholds(self, shape: torch.Size) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B_P, B_R)`` of a (B, T) batch: Beta(gamma, 1) draws, or their means when ``deterministic``."""
        if self.deterministic:
            return (
                torch.full(shape, self.gamma_P / (1 + self.gamma_P), dtype=torch.float64),
                torch.full(shape, self.gamma_R / (1 + self.gamma_R), dtype=torch.float64),
            )
        u = torch.rand((2, *shape), generator=self.generator, dtype=torch.float64)
        return u[0] ** (1 / self.gamma_P), u[1] ** (1 / self.gamma_R)

    def keep(self, log_ratio: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, T) bool: the real tokens that keep their gradient (see the class docstring)."""
        d = torch.where(mask, log_ratio.detach().double(), 0.0)
        if not mask.any():
            return mask.clone()
        m_p, m_r = d[mask].max().exp(), (-d[mask]).max().exp()  # max rho, max 1/rho over real tokens
        b_p, b_r = self.thresholds(d.shape)
        rejected = (d.exp() < m_p * b_p.to(d.device)) | ((-d).exp() < m_r * b_r.to(d.device))
        return mask & ~rejected

    def __call__(self, log_ratio: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``D_t`` where kept, ``D_t.detach()`` where rejected, 0 where masked; (B, T)."""
        kept = self.keep(log_ratio, mask)
        self._kept, self._seen = self._kept + float(kept.sum()), self._seen + float(mask.sum())
        return torch.where(mask, torch.where(kept, log_ratio, log_ratio.detach()), 0.0)

    @torch.no_grad()
    def unclipped_fraction(self, log_ratio: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Fraction of real tokens kept (with gradient) by the calls since the last read; 1 when none ran."""
        if self._seen == 0:
            return torch.where(mask.any(), masked_mean(torch.ones_like(mask), mask), 1.0)
        fraction, self._kept, self._seen = self._kept / self._seen, 0.0, 0.0
        return torch.tensor(fraction)

    def state_dict(self) -> dict:
        """The generator's state (saved in the module's checkpoint)."""
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        """Restore the generator's state saved by :meth:`state_dict`."""
        self.generator.set_state(state["generator"])

    def init_args(self) -> dict:
        return {
            "gamma_P": self.gamma_P,
            "gamma_R": self.gamma_R,
            "seed": self.seed,
            "deterministic": self.deterministic,
        }

    def describe(self) -> str:
        return f"sampling(gamma_P={self.gamma_P}, gamma_R={self.gamma_R})"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(gamma_P={self.gamma_P}, gamma_R={self.gamma_R}, seed={self.seed}, "
            f"deterministic={self.deterministic})"
        )
