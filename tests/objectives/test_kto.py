"""KTOLoss against hand-computed values, clipping, the constant KL and empty groups."""

from __future__ import annotations

import math

import pytest
import torch

from hl_lightning.objectives import ClipLogRatio, KTOLoss

F64 = torch.float64


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _batch(kl: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Three items, T = 2; kl = z0 = 0.2.

    item 0 desirable:   policy [-1.0, -2.0]   ref [-1.5, -2.1]   D = [0.5, 0.1]   r = 0.6
    item 1 undesirable: policy [-0.5, 7.0*]   ref [-0.3, 3.0*]   D = [-0.2]       r = -0.2  (* = padding)
    item 2 undesirable: policy [-2.0, -1.0]   ref [-1.0, -1.0]   D = [-1.0, 0.0]  r = -1.0
    """
    return dict(
        policy_logps=torch.tensor([[-1.0, -2.0], [-0.5, 7.0], [-2.0, -1.0]], dtype=F64, requires_grad=True),
        ref_logps=torch.tensor([[-1.5, -2.1], [-0.3, 3.0], [-1.0, -1.0]], dtype=F64),
        mask=torch.tensor([[True, True], [True, False], [True, True]]),
        desirable=torch.tensor([True, False, False]),
        kl=torch.tensor(0.2, dtype=F64) if kl is None else kl,
    )


def test_weighted_loss_and_metrics():
    """beta = 0.5, w_D = 2.0, w_U = 0.5, z0 = 0.2, no clip.

    item 0: 2.0 * (1 - sigmoid(0.5 * (0.6 - 0.2)))    = 2.0 * (1 - sigmoid(0.2))
    item 1: 0.5 * (1 - sigmoid(0.5 * (0.2 - -0.2)))   = 0.5 * (1 - sigmoid(0.2))
    item 2: 0.5 * (1 - sigmoid(0.5 * (0.2 - -1.0)))   = 0.5 * (1 - sigmoid(0.6))
    loss = mean of the three
    rewards/chosen = 0.5 * 0.6 = 0.3;  rewards/rejected = mean(0.5 * -0.2, 0.5 * -1.0) = -0.3
    logps/chosen = -3.0;  logps/rejected = mean(-0.5, -3.0) = -1.75;  kl = 0.2
    humanline/abs_log_ratio = (0.5 + 0.1 + 0.2 + 1.0 + 0.0) / 5 = 0.36
    """
    out = KTOLoss(beta=0.5, desirable_weight=2.0, undesirable_weight=0.5)(**_batch())
    losses = [2.0 * (1 - sigmoid(0.2)), 0.5 * (1 - sigmoid(0.2)), 0.5 * (1 - sigmoid(0.6))]
    assert out.loss.item() == pytest.approx(sum(losses) / 3, rel=1e-9)
    expected = {
        "kl": 0.2,
        "rewards/chosen": 0.3,
        "rewards/rejected": -0.3,
        "logps/chosen": -3.0,
        "logps/rejected": -1.75,
        "humanline/abs_log_ratio": 0.36,
    }
    assert out.metrics.keys() == expected.keys()
    for key, value in expected.items():
        assert out.metrics[key].item() == pytest.approx(value, rel=1e-6), key
        assert out.metrics[key].dim() == 0 and not out.metrics[key].requires_grad


def test_gradient_matches_analytic_formula():
    """d loss / d lp_t = (1/3) * dL_i / dr_i on every real token of item i (0 on padding).

    desirable:   dL/dr = -w_D * beta * s (1 - s),  s = sigmoid(0.2)  -> item 0: -(1/3) * 2.0 * 0.5 * s (1 - s)
    undesirable: dL/dr = +w_U * beta * s (1 - s),  s = sigmoid(beta * (z0 - r))
      item 1: s = sigmoid(0.2) -> (1/3) * 0.25 * s (1 - s);  item 2: s = sigmoid(0.6) -> same form.
    """
    batch = _batch()
    KTOLoss(beta=0.5, desirable_weight=2.0, undesirable_weight=0.5)(**batch).loss.backward()
    s2, s6 = sigmoid(0.2), sigmoid(0.6)
    g0, g1, g2 = -s2 * (1 - s2) / 3, 0.25 * s2 * (1 - s2) / 3, 0.25 * s6 * (1 - s6) / 3
    expected = torch.tensor([[g0, g0], [g1, 0.0], [g2, g2]], dtype=F64)
    torch.testing.assert_close(batch["policy_logps"].grad, expected, rtol=1e-9, atol=0)


def test_humanline_clip():
    """clip [a, b] = [-0.5, 0.3], beta = 0.5, w_D = 2.0, w_U = 0.5, z0 = 0.2.

    item 0: D = [0.5, 0.1] -> [0.3, 0.1], r = 0.4:    2.0 * (1 - sigmoid(0.5 * 0.2)) = 2.0 * (1 - s(0.1))
    item 1: D = [-0.2] unchanged, r = -0.2:           0.5 * (1 - sigmoid(0.5 * 0.4)) = 0.5 * (1 - s(0.2))
    item 2: D = [-1.0, 0.0] -> [-0.5, 0.0], r = -0.5: 0.5 * (1 - sigmoid(0.5 * 0.7)) = 0.5 * (1 - s(0.35))
    unclipped_frac = 3 of 5 real tokens (0.1, -0.2, 0.0) = 0.6; clipped tokens (0,0) and (2,0) get grad 0.
    """
    batch = _batch()
    loss_fn = KTOLoss(beta=0.5, desirable_weight=2.0, undesirable_weight=0.5, clip=ClipLogRatio(-0.5, 0.3))
    out = loss_fn(**batch)
    losses = [2.0 * (1 - sigmoid(0.1)), 0.5 * (1 - sigmoid(0.2)), 0.5 * (1 - sigmoid(0.35))]
    assert out.loss.item() == pytest.approx(sum(losses) / 3, rel=1e-9)
    assert out.metrics["humanline/unclipped_frac"].item() == pytest.approx(0.6, rel=1e-6)
    out.loss.backward()
    grad = batch["policy_logps"].grad
    assert grad[0, 0] == 0.0 and grad[2, 0] == 0.0
    assert grad[0, 1] != 0.0 and grad[1, 0] != 0.0 and grad[2, 1] != 0.0


def test_kl_is_a_constant():
    """A z0 that still requires grad is detached: its value (2 * 0.1 = 0.2) is used, no gradient reaches it.

    The loss must equal the z0 = 0.2 value of ``test_weighted_loss_and_metrics``.
    """
    source = torch.tensor(0.1, dtype=F64, requires_grad=True)
    out = KTOLoss(beta=0.5, desirable_weight=2.0, undesirable_weight=0.5)(**_batch(kl=2 * source))
    losses = [2.0 * (1 - sigmoid(0.2)), 0.5 * (1 - sigmoid(0.2)), 0.5 * (1 - sigmoid(0.6))]
    assert out.loss.item() == pytest.approx(sum(losses) / 3, rel=1e-9)
    assert not out.metrics["kl"].requires_grad
    out.loss.backward()
    assert source.grad is None


@pytest.mark.parametrize("flag, present, absent", [(True, "chosen", "rejected"), (False, "rejected", "chosen")])
def test_empty_group_metrics_are_omitted(flag, present, absent):
    """All items in one group: the other group's metrics are absent, none is NaN.

    All desirable (beta = 0.1): rewards/chosen = 0.1 * mean(0.6, -0.2, -1.0) = -0.02; same value when
    all undesirable, as rewards/rejected.
    """
    batch = _batch()
    batch["desirable"] = torch.full((3,), flag)
    out = KTOLoss()(**batch)
    assert f"rewards/{present}" in out.metrics and f"logps/{present}" in out.metrics
    assert f"rewards/{absent}" not in out.metrics and f"logps/{absent}" not in out.metrics
    assert out.metrics[f"rewards/{present}"].item() == pytest.approx(-0.02, rel=1e-6)
    assert all(torch.isfinite(v) for v in out.metrics.values())


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"beta": 0.0}, "beta"),
        ({"desirable_weight": 0.0}, "desirable_weight"),
        ({"undesirable_weight": -1.0}, "undesirable_weight"),
    ],
)
def test_validation(kwargs, name):
    with pytest.raises(ValueError, match=f"{name} must be > 0"):
        KTOLoss(**kwargs)
