"""IPOLoss against hand-computed values, gradients, clipping, padding, step 0 and validation."""

from __future__ import annotations

import math

import pytest
import torch

from hl_lightning.objectives import ClipLogRatio, IPOLoss

F64 = torch.float64
BETA = 0.5  # target margin 1 / (2 * beta) = 1.0


def _batch() -> dict[str, torch.Tensor]:
    """Two pairs; chosen T = 3 (pair 1 has one padded slot), rejected T = 2.

    pair 0  chosen:   policy [-0.5, -1.0, -2.0]   ref [-0.7, -0.6, -2.5]   D = [0.2, -0.4, 0.5]
            rejected: policy [-1.0, -3.0]         ref [-1.5, -2.0]         D = [0.5, -1.0]
    pair 1  chosen:   policy [-1.2, -0.3, 9.0*]   ref [-1.0, -0.4, -7.0*]  D = [-0.2, 0.1]   (* = padding)
            rejected: policy [-0.2, -0.9]         ref [-0.5, -1.0]         D = [0.3, 0.1]
    """
    return dict(
        policy_chosen_logps=torch.tensor([[-0.5, -1.0, -2.0], [-1.2, -0.3, 9.0]], dtype=F64, requires_grad=True),
        ref_chosen_logps=torch.tensor([[-0.7, -0.6, -2.5], [-1.0, -0.4, -7.0]], dtype=F64),
        chosen_mask=torch.tensor([[True, True, True], [True, True, False]]),
        policy_rejected_logps=torch.tensor([[-1.0, -3.0], [-0.2, -0.9]], dtype=F64, requires_grad=True),
        ref_rejected_logps=torch.tensor([[-1.5, -2.0], [-0.5, -1.0]], dtype=F64),
        rejected_mask=torch.tensor([[True, True], [True, True]]),
    )


def test_plain_ipo_loss_and_metrics():
    """No clip, beta = 0.5, so 1 / (2 * beta) = 1.

    r_w = [(0.2 - 0.4 + 0.5) / 3, (-0.2 + 0.1) / 2] = [0.1, -0.05]   (masked mean over real tokens)
    r_l = [(0.5 - 1.0) / 2, (0.3 + 0.1) / 2]        = [-0.25, 0.2]
    h = r_w - r_l = [0.35, -0.25];  h - 1 = [-0.65, -1.25]
    loss = (0.65**2 + 1.25**2) / 2 = (0.4225 + 1.5625) / 2 = 0.9925
    rewards/chosen = 0.5 * mean(0.1, -0.05) = 0.0125;  rewards/rejected = 0.5 * mean(-0.25, 0.2) = -0.0125
    rewards/accuracies = mean(0.1 > -0.25, -0.05 > 0.2) = 0.5;  rewards/margins = 0.5 * mean(0.35, -0.25) = 0.025
    logps/chosen = mean(-3.5, -1.5) = -2.5;  logps/rejected = mean(-4.0, -1.1) = -2.55
    humanline/abs_log_ratio = (0.2+0.4+0.5+0.2+0.1 + 0.5+1.0+0.3+0.1) / 9 = 3.3 / 9
    """
    out = IPOLoss(beta=BETA)(**_batch())
    assert out.loss.item() == pytest.approx(0.9925, rel=1e-9)
    assert out.loss.dim() == 0 and out.loss.requires_grad
    expected = {
        "rewards/chosen": 0.0125,
        "rewards/rejected": -0.0125,
        "rewards/accuracies": 0.5,
        "rewards/margins": 0.025,
        "logps/chosen": -2.5,
        "logps/rejected": -2.55,
        "humanline/abs_log_ratio": 3.3 / 9,
    }
    assert out.metrics.keys() == expected.keys()
    for key, value in expected.items():
        assert out.metrics[key].item() == pytest.approx(value, rel=1e-6), key
        assert out.metrics[key].dim() == 0 and not out.metrics[key].requires_grad


def test_default_beta_target_margin():
    """Default beta = 0.1: target 1 / 0.2 = 5;  h - 5 = [-4.65, -5.25]
    loss = (4.65**2 + 5.25**2) / 2 = (21.6225 + 27.5625) / 2 = 24.5925
    """
    out = IPOLoss()(**_batch())
    assert out.loss.item() == pytest.approx(24.5925, rel=1e-9)


def test_gradient_matches_analytic_formula():
    """loss = (1/B) sum_i (h_i - 1)**2, so d loss / d h_i = (2/B) (h_i - 1) = h_i - 1 with B = 2;
    dh_i / d lp_t = +1 / |y_w_i| on a real chosen token, -1 / |y_l_i| on a real rejected token.

    h - 1 = [-0.65, -1.25]:
      pair 0: chosen -0.65 / 3 each (3 tokens);            rejected +0.65 / 2 = 0.325 each
      pair 1: chosen -1.25 / 2 = -0.625 each, padded: 0;   rejected +1.25 / 2 = 0.625 each
    """
    batch = _batch()
    IPOLoss(beta=BETA)(**batch).loss.backward()
    c0 = -0.65 / 3
    expected_chosen = torch.tensor([[c0, c0, c0], [-0.625, -0.625, 0.0]], dtype=F64)
    expected_rejected = torch.tensor([[0.325, 0.325], [0.625, 0.625]], dtype=F64)
    torch.testing.assert_close(batch["policy_chosen_logps"].grad, expected_chosen, rtol=1e-9, atol=0)
    torch.testing.assert_close(batch["policy_rejected_logps"].grad, expected_rejected, rtol=1e-9, atol=0)
    assert batch["policy_chosen_logps"].grad[1, 2] == 0.0


def test_humanline_clip_changes_values_and_gates_gradient():
    """clip [a, b] = [-0.5, 0.4]; the denominator stays the real-token count (clipped tokens count).

    pair 0 chosen   D = [0.2, -0.4, 0.5] -> [0.2, -0.4, 0.4]   r_w0 = 0.2 / 3   (token 2 clipped)
    pair 0 rejected D = [0.5, -1.0]      -> [0.4, -0.5]        r_l0 = -0.1 / 2 = -0.05  (both clipped)
    pair 1 unchanged: r_w1 = -0.05, r_l1 = 0.2, h1 = -0.25
    h0 = 0.2/3 + 0.05 = 0.35 / 3;  h0 - 1 = -2.65 / 3;  h1 - 1 = -1.25
    loss = ((2.65/3)**2 + 1.25**2) / 2;  rewards/margins = 0.5 * mean(0.35/3, -0.25)
    unclipped_frac = (9 real - 3 clipped) / 9 = 2/3;  abs_log_ratio stays raw: 3.3 / 9
    grads (d loss / d h_i = h_i - 1):
      pair 0 chosen tokens 0, 1: (-2.65/3) / 3 = -2.65/9;  chosen token 2 and both rejected: exactly 0
      pair 1: chosen -0.625, -0.625, 0 (padded);  rejected 0.625, 0.625
    """
    batch = _batch()
    out = IPOLoss(beta=BETA, clip=ClipLogRatio(-0.5, 0.4))(**batch)
    assert out.loss.item() == pytest.approx(((2.65 / 3) ** 2 + 1.25**2) / 2, rel=1e-9)
    assert out.metrics["rewards/margins"].item() == pytest.approx(0.5 * (0.35 / 3 - 0.25) / 2, rel=1e-6)
    assert out.metrics["rewards/chosen"].item() == pytest.approx(0.5 * (0.2 / 3 - 0.05) / 2, rel=1e-6)
    assert out.metrics["rewards/rejected"].item() == pytest.approx(0.5 * (-0.05 + 0.2) / 2, rel=1e-6)
    assert out.metrics["humanline/unclipped_frac"].item() == pytest.approx(2 / 3, rel=1e-6)
    assert out.metrics["humanline/abs_log_ratio"].item() == pytest.approx(3.3 / 9, rel=1e-6)
    out.loss.backward()
    chosen_grad, rejected_grad = batch["policy_chosen_logps"].grad, batch["policy_rejected_logps"].grad
    assert chosen_grad[0, 2] == 0.0
    assert rejected_grad[0, 0] == 0.0 and rejected_grad[0, 1] == 0.0
    expected_chosen = torch.tensor([[-2.65 / 9, -2.65 / 9, 0.0], [-0.625, -0.625, 0.0]], dtype=F64)
    expected_rejected = torch.tensor([[0.0, 0.0], [0.625, 0.625]], dtype=F64)
    torch.testing.assert_close(chosen_grad, expected_chosen, rtol=1e-9, atol=0)
    torch.testing.assert_close(rejected_grad, expected_rejected, rtol=1e-9, atol=0)


def test_clip_never_hit_equals_no_clip():
    """Every |D_t| <= 1.0 < 5, so clip [-5, 5] changes no value and gates no gradient: loss and gradients
    are bit-identical to clip=None (0.9925 as in the plain test), and unclipped_frac = 9/9 = 1.
    """
    plain, clipped = _batch(), _batch()
    out_plain = IPOLoss(beta=BETA)(**plain)
    out_clipped = IPOLoss(beta=BETA, clip=ClipLogRatio(-5.0, 5.0))(**clipped)
    assert out_clipped.loss.item() == out_plain.loss.item()
    assert out_plain.loss.item() == pytest.approx(0.9925, rel=1e-9)
    assert out_clipped.metrics["humanline/unclipped_frac"].item() == 1.0
    assert "humanline/unclipped_frac" not in out_plain.metrics
    out_plain.loss.backward()
    out_clipped.loss.backward()
    for name in ("policy_chosen_logps", "policy_rejected_logps"):
        assert torch.equal(clipped[name].grad, plain[name].grad), name


def _pad(x: torch.Tensor, extra: list[float]) -> torch.Tensor:
    """Append the same ``extra`` columns to every row."""
    cols = torch.tensor(extra, dtype=x.dtype).expand(x.shape[0], -1)
    return torch.cat([x.detach(), cols], dim=1).requires_grad_(x.requires_grad)


def test_padding_never_changes_loss_or_gradients():
    """The padded slot (9.0 / -7.0) is rewritten to NaN / inf and masked columns holding garbage are
    appended (2 on chosen, 3 on rejected, so Tc != Tr). The real-token counts are unchanged, so loss,
    metrics and real-slot gradients must be unchanged; every padded slot gets gradient exactly 0.
    """
    base = _batch()
    base_out = IPOLoss(beta=BETA, clip=ClipLogRatio(-0.5, 0.4))(**base)
    base_out.loss.backward()

    policy_chosen = base["policy_chosen_logps"].detach().clone()
    policy_chosen[1, 2] = math.nan
    ref_chosen = base["ref_chosen_logps"].clone()
    ref_chosen[1, 2] = math.inf
    padded = {
        "policy_chosen_logps": _pad(policy_chosen.requires_grad_(), [50.0, 9.0]),
        "ref_chosen_logps": _pad(ref_chosen, [-80.0, 1.0]),
        "chosen_mask": _pad(base["chosen_mask"], [False, False]),
        "policy_rejected_logps": _pad(base["policy_rejected_logps"], [math.inf, -3.0, 9.0]),
        "ref_rejected_logps": _pad(base["ref_rejected_logps"], [math.inf, 4.0, math.nan]),
        "rejected_mask": _pad(base["rejected_mask"], [False, False, False]),
    }
    out = IPOLoss(beta=BETA, clip=ClipLogRatio(-0.5, 0.4))(**padded)
    out.loss.backward()
    torch.testing.assert_close(out.loss, base_out.loss, rtol=1e-12, atol=0)
    assert out.metrics.keys() == base_out.metrics.keys()
    for key, value in base_out.metrics.items():
        torch.testing.assert_close(out.metrics[key], value, rtol=1e-12, atol=0)
    for name, mask_name in (("policy_chosen_logps", "chosen_mask"), ("policy_rejected_logps", "rejected_mask")):
        grad, n = padded[name].grad, base[name].shape[1]
        torch.testing.assert_close(grad[:, :n], base[name].grad, rtol=1e-12, atol=0)
        assert (grad[~padded[mask_name]] == 0.0).all()


def test_step_zero_is_well_defined_even_with_an_empty_row():
    """Policy == reference: every D = 0, so r_w = r_l = 0 and h = 0 (HALOs' non-zero-token count would
    give 0/0 here). Pair 1's chosen row is additionally fully masked: its count is clamped to 1, r_w1 = 0.

    loss = (0 - 1)**2 = 1;  rewards/margins = 0;  accuracies = mean(0 > 0) = 0 (a tie is not a win);
    unclipped_frac = 1 (0 lies inside the clip);  abs_log_ratio = 0.
    grads (d loss / d h_i = h_i - 1 = -1): pair 0 chosen -1/3 each, rejected +1/2 each;
    pair 1 chosen all 0 (no real token), rejected +1/2 each.
    """
    batch = _batch()
    batch["ref_chosen_logps"] = batch["policy_chosen_logps"].detach().clone()
    batch["ref_rejected_logps"] = batch["policy_rejected_logps"].detach().clone()
    batch["chosen_mask"] = torch.tensor([[True, True, True], [False, False, False]])
    out = IPOLoss(beta=BETA, clip=ClipLogRatio())(**batch)
    assert out.loss.item() == pytest.approx(1.0, rel=1e-12)
    assert out.metrics["rewards/accuracies"].item() == 0.0
    assert out.metrics["rewards/margins"].item() == 0.0
    assert out.metrics["humanline/unclipped_frac"].item() == 1.0
    assert out.metrics["humanline/abs_log_ratio"].item() == 0.0
    out.loss.backward()
    expected_chosen = torch.tensor([[-1 / 3, -1 / 3, -1 / 3], [0.0, 0.0, 0.0]], dtype=F64)
    expected_rejected = torch.tensor([[0.5, 0.5], [0.5, 0.5]], dtype=F64)
    torch.testing.assert_close(batch["policy_chosen_logps"].grad, expected_chosen, rtol=1e-12, atol=0)
    torch.testing.assert_close(batch["policy_rejected_logps"].grad, expected_rejected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("beta", [0.0, -0.1, math.nan])
def test_beta_must_be_positive(beta):
    with pytest.raises(ValueError, match="beta must be > 0"):
        IPOLoss(beta=beta)


def test_repr():
    assert repr(IPOLoss()) == "IPOLoss(beta=0.1, clip=None)"
    assert (
        repr(IPOLoss(beta=0.5, clip=ClipLogRatio(-0.5, 0.4)))
        == "IPOLoss(beta=0.5, clip=ClipLogRatio(log_eps_P=-0.5, log_eps_R=0.4))"
    )
