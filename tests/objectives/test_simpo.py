"""SimPOLoss against hand-computed values, gradients, padding, empty rows and validation."""

from __future__ import annotations

import math

import pytest
import torch

from hl_lightning.objectives import SimPOLoss

F64 = torch.float64
BETA, GAMMA = 2.0, 1.0


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _batch() -> dict[str, torch.Tensor]:
    """Two pairs; chosen T = 3 (pair 1 has one padded slot), rejected T = 2 (pair 0 has one padded slot).

    pair 0  chosen:   [-0.5, -1.0, -1.5]    sum -3.0, |y| = 3, a_w = -1.0
            rejected: [-2.0, 9.0*]          sum -2.0, |y| = 1, a_l = -2.0      (* = padding)
    pair 1  chosen:   [-1.2, -0.6, 9.0*]    sum -1.8, |y| = 2, a_w = -0.9
            rejected: [-0.4, -0.8]          sum -1.2, |y| = 2, a_l = -0.6
    """
    return dict(
        policy_chosen_logps=torch.tensor([[-0.5, -1.0, -1.5], [-1.2, -0.6, 9.0]], dtype=F64, requires_grad=True),
        chosen_mask=torch.tensor([[True, True, True], [True, True, False]]),
        policy_rejected_logps=torch.tensor([[-2.0, 9.0], [-0.4, -0.8]], dtype=F64, requires_grad=True),
        rejected_mask=torch.tensor([[True, False], [True, True]]),
    )


def test_simpo_loss_and_metrics():
    """beta = 2, gamma = 1.

    beta * a_w = [-2.0, -1.8];  beta * a_l = [-4.0, -1.2]
    margins beta * (a_w - a_l) = [2 * 1.0, 2 * -0.3] = [2.0, -0.6];  z = margins - gamma = [1.0, -1.6]
    loss = (-log sigmoid(1.0) - log sigmoid(-1.6)) / 2
    rewards/chosen = mean(-2.0, -1.8) = -1.9;  rewards/rejected = mean(-4.0, -1.2) = -2.6
    rewards/accuracies = mean(-1.0 > -2.0, -0.9 > -0.6) = 0.5;  rewards/margins = mean(2.0, -0.6) = 0.7
    logps/chosen = mean(-3.0, -1.8) = -2.4;  logps/rejected = mean(-2.0, -1.2) = -1.6   (sums, not means)
    No humanline/* metric: there is no reference, hence no log-ratio.
    """
    out = SimPOLoss(beta=BETA, gamma=GAMMA)(**_batch())
    expected_loss = (-math.log(sigmoid(1.0)) - math.log(sigmoid(-1.6))) / 2
    assert out.loss.item() == pytest.approx(expected_loss, rel=1e-9)
    assert out.loss.dim() == 0 and out.loss.requires_grad
    expected = {
        "rewards/chosen": -1.9,
        "rewards/rejected": -2.6,
        "rewards/accuracies": 0.5,
        "rewards/margins": 0.7,
        "logps/chosen": -2.4,
        "logps/rejected": -1.6,
    }
    assert out.metrics.keys() == expected.keys()
    for key, value in expected.items():
        assert out.metrics[key].item() == pytest.approx(value, rel=1e-6), key
        assert out.metrics[key].dim() == 0 and not out.metrics[key].requires_grad


def test_gamma_zero_drops_the_margin_term():
    """gamma = 0: z = margins = [2.0, -0.6];  loss = (-log sigmoid(2.0) - log sigmoid(-0.6)) / 2.

    The metrics do not involve gamma: rewards/margins is still mean(2.0, -0.6) = 0.7.
    """
    out = SimPOLoss(beta=BETA, gamma=0.0)(**_batch())
    expected_loss = (-math.log(sigmoid(2.0)) - math.log(sigmoid(-0.6))) / 2
    assert out.loss.item() == pytest.approx(expected_loss, rel=1e-9)
    assert out.metrics["rewards/margins"].item() == pytest.approx(0.7, rel=1e-6)


def test_gradient_matches_analytic_formula():
    """loss = (1/B) sum_i -log sigmoid(z_i),  d(-log sigmoid z)/dz = -sigmoid(-z),
    dz_i / d lp_t = +beta / |y_w_i| on a real chosen token, -beta / |y_l_i| on a real rejected one.

    With B = 2, beta = 2 and z = [1.0, -1.6]:
      pair 0: chosen   -(1/2) * sigmoid(-1.0) * 2/3 = -sigmoid(-1) / 3   (3 tokens)
              rejected +(1/2) * sigmoid(-1.0) * 2/1 = +sigmoid(-1)       (1 token; padded slot: 0)
      pair 1: chosen   -(1/2) * sigmoid(1.6) * 2/2  = -sigmoid(1.6) / 2  (2 tokens; padded slot: 0)
              rejected +(1/2) * sigmoid(1.6) * 2/2  = +sigmoid(1.6) / 2
    """
    batch = _batch()
    SimPOLoss(beta=BETA, gamma=GAMMA)(**batch).loss.backward()
    g0, g1 = sigmoid(-1.0), sigmoid(1.6)
    expected_chosen = torch.tensor([[-g0 / 3, -g0 / 3, -g0 / 3], [-g1 / 2, -g1 / 2, 0.0]], dtype=F64)
    expected_rejected = torch.tensor([[g0, 0.0], [g1 / 2, g1 / 2]], dtype=F64)
    torch.testing.assert_close(batch["policy_chosen_logps"].grad, expected_chosen, rtol=1e-9, atol=0)
    torch.testing.assert_close(batch["policy_rejected_logps"].grad, expected_rejected, rtol=1e-9, atol=0)
    assert batch["policy_chosen_logps"].grad[1, 2] == 0.0
    assert batch["policy_rejected_logps"].grad[0, 1] == 0.0


def _pad(x: torch.Tensor, extra: list[float]) -> torch.Tensor:
    """Append the same ``extra`` columns to every row."""
    cols = torch.tensor(extra, dtype=x.dtype).expand(x.shape[0], -1)
    return torch.cat([x.detach(), cols], dim=1).requires_grad_(x.requires_grad)


def test_padding_never_changes_loss_or_gradients():
    """Padded slots are rewritten (9.0 -> -50.0) and masked columns with garbage (even inf / NaN) are
    appended (2 on chosen, 3 on rejected, so Tc != Tr). The per-row counts |y| stay [3, 2] / [1, 2], so
    loss, metrics and real-slot gradients must be unchanged; every padded slot gets gradient exactly 0.
    """
    base = _batch()
    base_out = SimPOLoss(beta=BETA, gamma=GAMMA)(**base)
    base_out.loss.backward()

    chosen = base["policy_chosen_logps"].detach().clone()
    chosen[1, 2] = -50.0
    rejected = base["policy_rejected_logps"].detach().clone()
    rejected[0, 1] = math.inf
    padded = {
        "policy_chosen_logps": _pad(chosen.requires_grad_(), [50.0, math.nan]),
        "chosen_mask": _pad(base["chosen_mask"], [False, False]),
        "policy_rejected_logps": _pad(rejected.requires_grad_(), [math.nan, -3.0, 7.0]),
        "rejected_mask": _pad(base["rejected_mask"], [False, False, False]),
    }
    out = SimPOLoss(beta=BETA, gamma=GAMMA)(**padded)
    out.loss.backward()
    torch.testing.assert_close(out.loss, base_out.loss, rtol=1e-12, atol=0)
    for key, value in base_out.metrics.items():
        torch.testing.assert_close(out.metrics[key], value, rtol=1e-12, atol=0)
    for name, mask_name in (("policy_chosen_logps", "chosen_mask"), ("policy_rejected_logps", "rejected_mask")):
        grad, n = padded[name].grad, base[name].shape[1]
        torch.testing.assert_close(grad[:, :n], base[name].grad, rtol=1e-12, atol=0)
        assert (grad[~padded[mask_name]] == 0.0).all()


def test_row_without_real_tokens_does_not_divide_by_zero():
    """One pair whose chosen row is fully masked (garbage 9.0 / NaN): |y_w| = max(0, 1) = 1, sum = 0, a_w = 0.

    rejected [-1.0, -3.0]: a_l = -4.0 / 2 = -2.0;  margin = 2 * (0 - (-2.0)) = 4.0;  z = 4.0 - 1 = 3.0
    loss = -log sigmoid(3.0);  rewards/chosen = 0 * 2 = 0, logps/chosen = 0
    grads: chosen all exactly 0; rejected +(1/1) * sigmoid(-3.0) * 2/2 = sigmoid(-3.0) each.
    """
    chosen = torch.tensor([[9.0, math.nan]], dtype=F64, requires_grad=True)
    rejected = torch.tensor([[-1.0, -3.0]], dtype=F64, requires_grad=True)
    out = SimPOLoss(beta=BETA, gamma=GAMMA)(
        policy_chosen_logps=chosen,
        chosen_mask=torch.tensor([[False, False]]),
        policy_rejected_logps=rejected,
        rejected_mask=torch.tensor([[True, True]]),
    )
    assert out.loss.item() == pytest.approx(-math.log(sigmoid(3.0)), rel=1e-9)
    assert out.metrics["rewards/chosen"].item() == 0.0
    assert out.metrics["logps/chosen"].item() == 0.0
    assert out.metrics["rewards/margins"].item() == pytest.approx(4.0, rel=1e-6)
    out.loss.backward()
    assert chosen.grad.tolist() == [[0.0, 0.0]]
    assert rejected.grad[0].tolist() == pytest.approx([sigmoid(-3.0), sigmoid(-3.0)], rel=1e-9)


def test_takes_no_reference_and_no_clip():
    """SimPO is reference-free: a DPO-style reference argument or a humanline clip is refused loudly."""
    batch = _batch()
    with pytest.raises(TypeError, match="ref_chosen_logps"):
        SimPOLoss()(**batch, ref_chosen_logps=batch["policy_chosen_logps"].detach())
    with pytest.raises(TypeError, match="clip"):
        SimPOLoss(clip=None)


@pytest.mark.parametrize("beta", [0.0, -2.0, math.nan])
def test_beta_must_be_positive(beta):
    with pytest.raises(ValueError, match="beta must be > 0"):
        SimPOLoss(beta=beta)


@pytest.mark.parametrize("gamma", [-0.5, math.nan])
def test_gamma_must_be_non_negative(gamma):
    with pytest.raises(ValueError, match="gamma must be >= 0"):
        SimPOLoss(gamma=gamma)


def test_defaults_and_repr():
    assert repr(SimPOLoss()) == "SimPOLoss(beta=2.0, gamma=1.0)"
    assert repr(SimPOLoss(beta=2.5, gamma=0.0)) == "SimPOLoss(beta=2.5, gamma=0.0)"
