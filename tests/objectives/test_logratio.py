"""ClipLogRatio and token_log_ratio: values, exact gradient gating, the metric, validation."""

from __future__ import annotations

import math

import pytest
import torch

from hl_lightning.objectives import ClipLogRatio, log_ratio_metrics, token_log_ratio

# One row, bounds a = -1.0, b = 0.5: below, at a, inside, at b, above, then a masked (garbage) slot.
D = [-2.0, -1.0, 0.25, 0.5, 0.75, 3.0]
MASK = [True, True, True, True, True, False]


def _clip_example() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    log_ratio = torch.tensor([D], dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([MASK])
    out = ClipLogRatio(log_eps_P=-1.0, log_eps_R=0.5)(log_ratio, mask)
    out.sum().backward()
    return out, log_ratio.grad, mask


def test_clip_values():
    """clamp(D, -1, 0.5) token by token, 0 where masked.

    D = [-2, -1, 0.25, 0.5, 0.75, 3 (masked)]
      -> [-1 (raised to a), -1 (at a), 0.25, 0.5 (at b), 0.5 (lowered to b), 0 (masked)].
    """
    out, _, _ = _clip_example()
    assert out.tolist() == [[-1.0, -1.0, 0.25, 0.5, 0.5, 0.0]]


def test_clip_gradient_is_gated_exactly():
    """d sum(Dc) / dD_t = 1[a <= D_t <= b] * m_t.

    Strictly outside (-2 and 0.75): exactly 0. At the bounds (-1, 0.5) and inside (0.25): 1, because
    torch.clamp is inclusive. Masked (3.0): 0.  -> [0, 1, 1, 1, 0, 0].
    """
    _, grad, _ = _clip_example()
    assert grad[0, 0] == 0.0 and grad[0, 4] == 0.0
    assert grad[0, 5] == 0.0
    assert grad[0, 1:4].tolist() == [1.0, 1.0, 1.0]


def test_unclipped_fraction():
    """Real tokens: -2, -1, 0.25, 0.5, 0.75 (5). With -1 <= D <= 0.5: -1, 0.25, 0.5 (3). -> 3/5 = 0.6.

    The masked 3.0 would be clipped but is not counted. The result is detached.
    """
    log_ratio = torch.tensor([D], dtype=torch.float64, requires_grad=True)
    frac = ClipLogRatio(-1.0, 0.5).unclipped_fraction(log_ratio, torch.tensor([MASK]))
    assert frac.item() == pytest.approx(0.6, rel=1e-6)
    assert not frac.requires_grad


def test_unclipped_fraction_step_zero_and_empty_mask():
    """Step 0: D = 0 everywhere, 0 is inside [a, b] -> 1 (unlike HALOs' 0). No real token -> 1."""
    clip = ClipLogRatio()
    zeros = torch.zeros(2, 3)
    assert clip.unclipped_fraction(zeros, torch.ones(2, 3, dtype=torch.bool)).item() == 1.0
    assert clip.unclipped_fraction(zeros + 9.0, torch.zeros(2, 3, dtype=torch.bool)).item() == 1.0


def test_token_log_ratio_raw_and_clipped():
    """policy - ref on real tokens, 0 (value and grad) on masked ones even when they hold NaN.

    policy = [-1.0, -3.0, nan], ref = [-1.5, -1.0, -2.0], mask = [T, T, F]
    raw D = [0.5, -2.0, 0]; with clip(-1.5, 1.5): [0.5, -1.5, 0]; grads [1, 0, 0].
    """
    policy = torch.tensor([[-1.0, -3.0, math.nan]], dtype=torch.float64, requires_grad=True)
    ref = torch.tensor([[-1.5, -1.0, -2.0]], dtype=torch.float64)
    mask = torch.tensor([[True, True, False]])
    assert token_log_ratio(policy, ref, mask, None).tolist() == [[0.5, -2.0, 0.0]]
    clipped = token_log_ratio(policy, ref, mask, ClipLogRatio())
    assert clipped.tolist() == [[0.5, -1.5, 0.0]]
    clipped.sum().backward()
    assert policy.grad.tolist() == [[1.0, 0.0, 0.0]]


def test_log_ratio_metrics():
    """Same tokens as above: |D| over real tokens = (0.5 + 2.0) / 2 = 1.25; unclipped: 0.5 only -> 1/2."""
    policy = torch.tensor([[-1.0, -3.0, math.nan]], dtype=torch.float64)
    ref = torch.tensor([[-1.5, -1.0, -2.0]], dtype=torch.float64)
    mask = torch.tensor([[True, True, False]])
    assert log_ratio_metrics(policy, ref, mask, None).keys() == {"humanline/abs_log_ratio"}
    metrics = log_ratio_metrics(policy, ref, mask, ClipLogRatio())
    assert metrics["humanline/abs_log_ratio"].item() == pytest.approx(1.25, rel=1e-9)
    assert metrics["humanline/unclipped_frac"].item() == pytest.approx(0.5, rel=1e-6)


@pytest.mark.parametrize("lower", [0.0, 0.5])
def test_lower_bound_must_be_negative(lower):
    with pytest.raises(ValueError, match=r"log_eps_P must be < 0.*step 0.*-1\.5 / 1\.5"):
        ClipLogRatio(log_eps_P=lower, log_eps_R=1.5)


@pytest.mark.parametrize("upper", [0.0, -0.5])
def test_upper_bound_must_be_positive(upper):
    with pytest.raises(ValueError, match=r"log_eps_R must be > 0.*must contain 0"):
        ClipLogRatio(log_eps_P=-1.5, log_eps_R=upper)


@pytest.mark.parametrize("bounds", [(-math.inf, 1.5), (-1.5, math.inf), (math.nan, 1.5)])
def test_bounds_must_be_finite(bounds):
    with pytest.raises(ValueError, match="must be a finite number"):
        ClipLogRatio(*bounds)


def test_attributes_and_repr():
    clip = ClipLogRatio(log_eps_P=-1.0, log_eps_R=2.0)
    assert (clip.log_eps_P, clip.log_eps_R) == (-1.0, 2.0)
    assert repr(clip) == "ClipLogRatio(log_eps_P=-1.0, log_eps_R=2.0)"
    assert repr(ClipLogRatio()) == "ClipLogRatio(log_eps_P=-1.5, log_eps_R=1.5)"
