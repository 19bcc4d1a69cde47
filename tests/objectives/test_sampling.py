"""Humanline sampling (SampleLogRatio): the rejection rule by hand, detach-not-zero, its clipping limit, seeding
and resuming, and the module slot it shares with ClipLogRatio."""

import math

import pytest
import torch

from hl_lightning.objectives import ClipLogRatio, DPOLoss, SampleLogRatio, gate_from_spec

F64 = torch.float64
# rho = exp(D) = [1, 2, 0.5, 4] on real tokens, then one padded slot holding garbage
D = torch.tensor([[0.0, math.log(2), -math.log(2), math.log(4), 7.0]], dtype=F64)
MASK = torch.tensor([[True, True, True, True, False]])


def grad_of(gate, d=D, mask=MASK):
    d = d.clone().requires_grad_(True)
    out = gate(d, mask)
    (out * torch.arange(1.0, 6.0, dtype=F64)).sum().backward()
    return out.detach(), d.grad


def test_deterministic_limit_by_hand():
    """gamma_P = gamma_R = 0.25: the draws' mean is 0.2. M_P = max rho = 4, M_R = max 1/rho = 2.
    rho=1: 1 < 4*0.2=0.8? no; 1/1 < 2*0.2=0.4? no -> kept.   rho=2: 2 < 0.8 no; 0.5 < 0.4 no -> kept.
    rho=0.5: 0.5 < 0.8 -> rejected.   rho=4: 4 < 0.8 no; 0.25 < 0.4 -> rejected.
    Kept values pass with gradient w_t = t + 1; rejected ones keep their value D_t with gradient 0; padding is 0."""
    out, grad = grad_of(SampleLogRatio(gamma_P=0.25, gamma_R=0.25, deterministic=True))
    torch.testing.assert_close(out, torch.where(MASK, D, 0.0), rtol=0, atol=0)  # values kept, not zeroed
    torch.testing.assert_close(grad, torch.tensor([[1.0, 2.0, 0.0, 0.0, 0.0]], dtype=F64), rtol=0, atol=0)


def test_deterministic_limit_gates_like_a_clip_on_its_interval():
    """Kept iff M_P g/(1+g) <= rho <= (1+g)/(M_R g): here [0.8, 2.5]; ClipLogRatio(log 0.8, log 2.5) passes gradient
    on exactly the same tokens (and clamps the values, which sampling does not)."""
    _, sampled = grad_of(SampleLogRatio(gamma_P=0.25, gamma_R=0.25, deterministic=True))
    clipped_out, clipped = grad_of(ClipLogRatio(math.log(0.8), math.log(2.5)))
    torch.testing.assert_close(sampled, clipped, rtol=0, atol=0)
    assert clipped_out[0, 2].item() == pytest.approx(math.log(0.8)) and clipped_out[0, 3].item() == pytest.approx(
        math.log(2.5)
    )


def test_m_is_taken_over_real_tokens_only():
    """Every real rho below 1 (D = -1.2, -0.2: rho = 0.301, 0.819) and a padded slot: M_P = 0.819 over the real
    tokens, so with gamma_P = 0.5 (mean draw 1/3) the threshold is 0.273 and both tokens are kept. Counting the
    padding (rho 1 once masked, HALOs' old code) would make M_P = 1, the threshold 0.333, and reject rho = 0.301."""
    d = torch.tensor([[-1.2, -0.2, 7.0]], dtype=F64)
    mask = torch.tensor([[True, True, False]])
    keep = SampleLogRatio(gamma_P=0.5, gamma_R=0.01, deterministic=True).keep(d, mask)
    assert keep.tolist() == [[True, True, False]]


def test_random_rejection_follows_the_rule_with_seeded_beta_draws():
    gate = SampleLogRatio(gamma_P=0.5, gamma_R=0.3, seed=7)
    g = torch.Generator().manual_seed(7)
    u = torch.rand((2, *D.shape), generator=g, dtype=F64)
    b_p, b_r = u[0] ** (1 / 0.5), u[1] ** (1 / 0.3)  # Beta(gamma, 1) = U ** (1 / gamma)
    rho = D.exp()
    rejected = (rho < 4 * b_p) | (1 / rho < 2 * b_r)
    _, grad = grad_of(gate)
    expected = torch.where(MASK & ~rejected, torch.arange(1.0, 6.0, dtype=F64), 0.0)
    torch.testing.assert_close(grad, expected, rtol=0, atol=0)


def test_draws_are_seeded_and_resume_exactly():
    a, b = SampleLogRatio(seed=3), SampleLogRatio(seed=3)
    first = a.keep(D, MASK)
    assert torch.equal(first, b.keep(D, MASK))
    saved = a.state_dict()
    following = [a.keep(D.repeat(4, 1), MASK.repeat(4, 1)) for _ in range(3)]
    resumed = SampleLogRatio(seed=99)
    resumed.load_state_dict(saved)
    assert all(torch.equal(x, resumed.keep(D.repeat(4, 1), MASK.repeat(4, 1))) for x in following)


def test_kept_fraction_metric_and_options():
    gate = SampleLogRatio(gamma_P=0.25, gamma_R=0.25, deterministic=True)
    out = DPOLoss(beta=0.1, clip=gate)(
        policy_chosen_logps=D,
        ref_chosen_logps=torch.zeros_like(D),
        chosen_mask=MASK,
        policy_rejected_logps=D,
        ref_rejected_logps=torch.zeros_like(D),
        rejected_mask=MASK,
    )
    assert out.metrics["humanline/unclipped_frac"].item() == pytest.approx(0.5)  # 2 of 4 kept, in both calls
    with pytest.raises(ValueError, match=r"SampleLogRatio\(gamma_P=0\): gamma_P must be a finite number > 0"):
        SampleLogRatio(gamma_P=0)
    rebuilt = gate_from_spec({"class_path": "hl_lightning.objectives.SampleLogRatio", "init_args": gate.init_args()})
    assert isinstance(rebuilt, SampleLogRatio) and rebuilt.init_args() == gate.init_args()
    assert isinstance(gate, ClipLogRatio)  # the same slot as the clip in every module and YAML
