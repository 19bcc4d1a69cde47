"""DPOLoss against hand-computed values, gradients, clipping and padding."""

from __future__ import annotations

import math

import pytest
import torch

from hl_lightning.objectives import ClipLogRatio, DPOLoss

F64 = torch.float64
BETA = 0.1


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


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


def test_plain_dpo_loss_and_metrics():
    """No clip.

    r_c = [0.2 - 0.4 + 0.5, -0.2 + 0.1] = [0.3, -0.1];  r_r = [0.5 - 1.0, 0.3 + 0.1] = [-0.5, 0.4]
    margins beta * (r_c - r_r) = [0.1 * 0.8, 0.1 * -0.5] = [0.08, -0.05]
    loss = (-log sigmoid(0.08) - log sigmoid(-0.05)) / 2
    rewards/chosen = mean(0.03, -0.01) = 0.01;  rewards/rejected = mean(-0.05, 0.04) = -0.005
    rewards/accuracies = mean(0.3 > -0.5, -0.1 > 0.4) = 0.5;  rewards/margins = mean(0.08, -0.05) = 0.015
    logps/chosen = mean(-3.5, -1.5) = -2.5;  logps/rejected = mean(-4.0, -1.1) = -2.55
    humanline/abs_log_ratio = (0.2+0.4+0.5+0.2+0.1 + 0.5+1.0+0.3+0.1) / 9 = 3.3 / 9
    """
    out = DPOLoss(beta=BETA)(**_batch())
    expected_loss = (-math.log(sigmoid(0.08)) - math.log(sigmoid(-0.05))) / 2
    assert out.loss.item() == pytest.approx(expected_loss, rel=1e-9)
    expected = {
        "rewards/chosen": 0.01,
        "rewards/rejected": -0.005,
        "rewards/accuracies": 0.5,
        "rewards/margins": 0.015,
        "logps/chosen": -2.5,
        "logps/rejected": -2.55,
        "humanline/abs_log_ratio": 3.3 / 9,
    }
    assert out.metrics.keys() == expected.keys()
    for key, value in expected.items():
        assert out.metrics[key].item() == pytest.approx(value, rel=1e-6), key
        assert out.metrics[key].dim() == 0 and not out.metrics[key].requires_grad


def test_gradient_matches_analytic_formula():
    """d loss / d lp_t = -(1/B) * beta * sigmoid(-m_i) on real chosen tokens, +(1/B) * ... on rejected.

    With B = 2 and m = [0.08, -0.05]:
      pair 0: chosen -0.05 * sigmoid(-0.08), rejected +0.05 * sigmoid(-0.08)
      pair 1: chosen -0.05 * sigmoid(0.05),  rejected +0.05 * sigmoid(0.05);  padded slot: 0.
    """
    batch = _batch()
    DPOLoss(beta=BETA)(**batch).loss.backward()
    g0, g1 = 0.05 * sigmoid(-0.08), 0.05 * sigmoid(0.05)
    expected_chosen = torch.tensor([[-g0, -g0, -g0], [-g1, -g1, 0.0]], dtype=F64)
    expected_rejected = torch.tensor([[g0, g0], [g1, g1]], dtype=F64)
    torch.testing.assert_close(batch["policy_chosen_logps"].grad, expected_chosen, rtol=1e-9, atol=0)
    torch.testing.assert_close(batch["policy_rejected_logps"].grad, expected_rejected, rtol=1e-9, atol=0)


def test_humanline_clip_changes_values_and_gates_gradient():
    """clip [a, b] = [-0.5, 0.4].

    pair 0 chosen   D = [0.2, -0.4, 0.5]  -> [0.2, -0.4, 0.4]   r_c0 = 0.2   (token 2 clipped)
    pair 0 rejected D = [0.5, -1.0]       -> [0.4, -0.5]        r_r0 = -0.1  (both clipped)
    pair 1 unchanged: r_c1 = -0.1, r_r1 = 0.4
    margins = [0.1 * 0.3, 0.1 * -0.5] = [0.03, -0.05];  loss = (-log sigmoid(0.03) - log sigmoid(-0.05)) / 2
    unclipped_frac = (9 real - 3 clipped) / 9 = 2/3;  abs_log_ratio stays raw: 3.3 / 9
    grads: clipped tokens exactly 0; pair 0 chosen tokens 0, 1: -0.05 * sigmoid(-0.03).
    """
    batch = _batch()
    out = DPOLoss(beta=BETA, clip=ClipLogRatio(-0.5, 0.4))(**batch)
    expected_loss = (-math.log(sigmoid(0.03)) - math.log(sigmoid(-0.05))) / 2
    assert out.loss.item() == pytest.approx(expected_loss, rel=1e-9)
    assert out.metrics["rewards/margins"].item() == pytest.approx((0.03 - 0.05) / 2, rel=1e-6)
    assert out.metrics["humanline/unclipped_frac"].item() == pytest.approx(2 / 3, rel=1e-6)
    assert out.metrics["humanline/abs_log_ratio"].item() == pytest.approx(3.3 / 9, rel=1e-6)
    out.loss.backward()
    chosen_grad, rejected_grad = batch["policy_chosen_logps"].grad, batch["policy_rejected_logps"].grad
    assert chosen_grad[0, 2] == 0.0
    assert rejected_grad[0, 0] == 0.0 and rejected_grad[0, 1] == 0.0
    assert chosen_grad[0, :2].tolist() == pytest.approx([-0.05 * sigmoid(-0.03)] * 2, rel=1e-9)


def _pad(x: torch.Tensor, extra: list[float]) -> torch.Tensor:
    """Append the same ``extra`` columns to every row."""
    cols = torch.tensor(extra, dtype=x.dtype).expand(x.shape[0], -1)
    return torch.cat([x.detach(), cols], dim=1).requires_grad_(x.requires_grad)


def test_padding_never_changes_loss_or_gradients():
    """Extra masked columns (2 on chosen, 3 on rejected, so Tc != Tr) hold garbage, even inf / NaN.

    Loss, metrics and gradients of the real slots must be unchanged; the new slots get gradient 0.
    """
    base = _batch()
    base_out = DPOLoss(beta=BETA, clip=ClipLogRatio(-0.5, 0.4))(**base)
    base_out.loss.backward()

    padded = {
        "policy_chosen_logps": _pad(base["policy_chosen_logps"], [50.0, math.nan]),
        "ref_chosen_logps": _pad(base["ref_chosen_logps"], [-80.0, 1.0]),
        "chosen_mask": _pad(base["chosen_mask"], [False, False]),
        "policy_rejected_logps": _pad(base["policy_rejected_logps"], [math.inf, -3.0, 7.0]),
        "ref_rejected_logps": _pad(base["ref_rejected_logps"], [math.inf, 4.0, -9.0]),
        "rejected_mask": _pad(base["rejected_mask"], [False, False, False]),
    }
    out = DPOLoss(beta=BETA, clip=ClipLogRatio(-0.5, 0.4))(**padded)
    out.loss.backward()
    torch.testing.assert_close(out.loss, base_out.loss, rtol=1e-12, atol=0)
    for key, value in base_out.metrics.items():
        torch.testing.assert_close(out.metrics[key], value, rtol=1e-12, atol=0)
    for name, n in (("policy_chosen_logps", 3), ("policy_rejected_logps", 2)):
        grad = padded[name].grad
        torch.testing.assert_close(grad[:, :n], base[name].grad, rtol=1e-12, atol=0)
        assert (grad[:, n:] == 0.0).all()


def test_step_zero_policy_equals_reference():
    """Policy == reference: every D = 0, so r_c = r_r = 0 and the margin is 0.

    loss = -log sigmoid(0) = log 2; rewards 0; accuracies = mean(0 > 0) = 0 (a tie is not a win, as in TRL);
    unclipped_frac = 1 (0 lies inside the clip interval); abs_log_ratio = 0.
    """
    batch = _batch()
    batch["ref_chosen_logps"] = batch["policy_chosen_logps"].detach().clone()
    batch["ref_rejected_logps"] = batch["policy_rejected_logps"].detach().clone()
    out = DPOLoss(beta=BETA, clip=ClipLogRatio())(**batch)
    assert out.loss.item() == pytest.approx(math.log(2), rel=1e-12)
    assert out.metrics["rewards/accuracies"].item() == 0.0
    assert out.metrics["rewards/margins"].item() == 0.0
    assert out.metrics["humanline/unclipped_frac"].item() == 1.0
    assert out.metrics["humanline/abs_log_ratio"].item() == 0.0


@pytest.mark.parametrize("beta", [0.0, -0.1])
def test_beta_must_be_positive(beta):
    with pytest.raises(ValueError, match="beta must be > 0"):
        DPOLoss(beta=beta)
