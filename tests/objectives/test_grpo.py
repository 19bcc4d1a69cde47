"""GRPOLoss and group_advantages against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from hl_lightning.objectives import ClipLogRatio, GRPOLoss, group_advantages

F64 = torch.float64


def _from_ratios(ratios: list[list[float]], ref: float = -1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Policy and reference log-probs with exp(policy - ref) = ratios (ref = -1 everywhere)."""
    ref_logps = torch.full((len(ratios), len(ratios[0])), ref, dtype=F64)
    policy = ref_logps + torch.tensor(ratios, dtype=F64).log()
    return policy.requires_grad_(), ref_logps


def test_surrogate_clip_ratio_and_token_normalisation():
    """eps = 0.2 (so clamp to [0.8, 1.2]), kl_beta = 0, no humanline clip; anchor = reference.

    row 0, A = +1, ratios [1.1, 1.5, 0.5, pad]:
      1.1: -min(1.1, 1.1) = -1.1;  1.5: -min(1.5, 1.2) = -1.2 (PPO clip binds);  0.5: -min(0.5, 0.8) = -0.5
    row 1, A = -2, ratios [0.9, 0.5, 1.5, 1.0]:
      0.9: -min(-1.8, -1.8) = 1.8;  0.5: -min(-1.0, -1.6) = 1.6 (binds);
      1.5: -min(-3.0, -2.4) = 3.0;  1.0: -min(-2.0, -2.0) = 2.0
    loss = (-1.1 - 1.2 - 0.5 + 1.8 + 1.6 + 3.0 + 2.0) / 7 real tokens = 5.6 / 7 = 0.8
      (a per-sequence mean would give (-2.8/3 + 8.4/4) / 2 = 0.5833...)
    clip_ratio = 2 / 7;  kl = mean over real tokens of k3 = 1/rho + log(rho) - 1
    grads (d/d lp of -A*rho on the unclipped branch, / 7): row 0 [-1.1, 0, -0.5, 0] / 7,
      row 1 [1.8, 0, 3.0, 2.0] / 7.
    """
    policy, ref = _from_ratios([[1.1, 1.5, 0.5, 1.0], [0.9, 0.5, 1.5, 1.0]])
    with torch.no_grad():
        policy[0, 3] = 42.0  # garbage in row 0's padded slot
    mask = torch.tensor([[True, True, True, False], [True, True, True, True]])
    out = GRPOLoss(epsilon=0.2)(
        policy_logps=policy, ref_logps=ref, mask=mask, advantages=torch.tensor([1.0, -2.0], dtype=F64)
    )
    assert out.loss.item() == pytest.approx(0.8, rel=1e-9)
    assert out.metrics["clip_ratio"].item() == pytest.approx(2 / 7, rel=1e-6)
    rhos = [1.1, 1.5, 0.5, 0.9, 0.5, 1.5, 1.0]
    kl = sum(1 / r + math.log(r) - 1 for r in rhos) / 7
    assert out.metrics["kl"].item() == pytest.approx(kl, rel=1e-9)
    abs_log_ratio = sum(abs(math.log(r)) for r in rhos) / 7
    assert out.metrics["humanline/abs_log_ratio"].item() == pytest.approx(abs_log_ratio, rel=1e-9)
    assert "humanline/unclipped_frac" not in out.metrics
    out.loss.backward()
    expected = torch.tensor([[-1.1, 0.0, -0.5, 0.0], [1.8, 0.0, 3.0, 2.0]], dtype=F64) / 7
    torch.testing.assert_close(policy.grad, expected, rtol=1e-9, atol=0)


def test_humanline_clip_gates_surrogate_but_not_kl():
    """eps = 0.2, kl_beta = 0.1, clip [a, b] = [-0.5, 0.3], A = -2, ratios [0.9, 0.5, 1.5, 1.0].

    Clipped ratios: 0.9 (inside), exp(-0.5) (log 0.5 < -0.5), exp(0.3) (log 1.5 > 0.3), 1.0.
    Surrogate: 0.9 -> 1.8;  exp(-0.5) = 0.607 < 0.8 -> -min(-1.213, -1.6) = 1.6;
      exp(0.3) = 1.350 -> -min(-2.700, -2.4) = 2 exp(0.3);  1.0 -> 2.0
    KL on the unclipped D = log(rho): k3 = 1/rho + log(rho) - 1.
    loss = (1.8 + 1.6 + 2 exp(0.3) + 2.0 + 0.1 * sum k3) / 4
    grads / 4: token 0: 2 * 0.9 + 0.1 (1 - 1/0.9);  token 3: 2 * 1.0 + 0.
      tokens 1, 2 (humanline-clipped, token 2 would keep PPO gradient without it): KL only,
      kl_beta * (1 - exp(ref - policy)) = 0.1 * (1 - 1/rho).
    unclipped_frac = 2/4;  clip_ratio = 1/4 (token 1: rho < 0.8 with A < 0).
    """
    ratios = [0.9, 0.5, 1.5, 1.0]
    policy, ref = _from_ratios([ratios])
    mask = torch.ones(1, 4, dtype=torch.bool)
    loss_fn = GRPOLoss(epsilon=0.2, kl_beta=0.1, clip=ClipLogRatio(-0.5, 0.3))
    out = loss_fn(policy_logps=policy, ref_logps=ref, mask=mask, advantages=torch.tensor([-2.0], dtype=F64))
    k3 = [1 / r + math.log(r) - 1 for r in ratios]
    expected_loss = (1.8 + 1.6 + 2 * math.exp(0.3) + 2.0 + 0.1 * sum(k3)) / 4
    assert out.loss.item() == pytest.approx(expected_loss, rel=1e-9)
    assert out.metrics["humanline/unclipped_frac"].item() == pytest.approx(0.5, rel=1e-6)
    assert out.metrics["clip_ratio"].item() == pytest.approx(0.25, rel=1e-6)
    out.loss.backward()
    kl_grad = [0.1 * (1 - 1 / r) for r in ratios]
    expected = [(1.8 + kl_grad[0]) / 4, kl_grad[1] / 4, kl_grad[2] / 4, 2.0 / 4]
    assert policy.grad[0].tolist() == pytest.approx(expected, rel=1e-9)


def test_old_logps_anchor_ratio_while_kl_uses_reference():
    """eps = 0.2, kl_beta = 0.5, A = +1, no clip.

    policy [-1.0, -2.0], old [-1.1, -2.0] -> rho = [exp(0.1), 1];  ref [-1.5, -1.8] -> D = [0.5, -0.2]
    (against ref, rho would be exp(0.5) = 1.65 and PPO-clipped to 1.2.)
    l_0 = -exp(0.1) + 0.5 (exp(-0.5) + 0.5 - 1);  l_1 = -1 + 0.5 (exp(0.2) - 0.2 - 1);  loss = (l_0 + l_1) / 2
    kl = mean(exp(-0.5) - 0.5, exp(0.2) - 1.2)
    grads: (-exp(0.1) + 0.5 (1 - exp(-0.5))) / 2,  (-1 + 0.5 (1 - exp(0.2))) / 2
    """
    policy = torch.tensor([[-1.0, -2.0]], dtype=F64, requires_grad=True)
    out = GRPOLoss(epsilon=0.2, kl_beta=0.5)(
        policy_logps=policy,
        ref_logps=torch.tensor([[-1.5, -1.8]], dtype=F64),
        old_logps=torch.tensor([[-1.1, -2.0]], dtype=F64),
        mask=torch.ones(1, 2, dtype=torch.bool),
        advantages=torch.tensor([1.0], dtype=F64),
    )
    l0 = -math.exp(0.1) + 0.5 * (math.exp(-0.5) + 0.5 - 1)
    l1 = -1 + 0.5 * (math.exp(0.2) - 0.2 - 1)
    assert out.loss.item() == pytest.approx((l0 + l1) / 2, rel=1e-9)
    kl = (math.exp(-0.5) - 0.5 + math.exp(0.2) - 1.2) / 2
    assert out.metrics["kl"].item() == pytest.approx(kl, rel=1e-9)
    assert out.metrics["clip_ratio"].item() == 0.0
    out.loss.backward()
    expected = [(-math.exp(0.1) + 0.5 * (1 - math.exp(-0.5))) / 2, (-1 + 0.5 * (1 - math.exp(0.2))) / 2]
    assert policy.grad[0].tolist() == pytest.approx(expected, rel=1e-9)


def test_no_real_token_gives_zero_loss():
    """Nothing to average: loss 0 (not NaN), zero gradient, unclipped_frac 1."""
    policy, ref = _from_ratios([[1.5, 0.5]])
    out = GRPOLoss(kl_beta=0.1, clip=ClipLogRatio())(
        policy_logps=policy,
        ref_logps=ref,
        mask=torch.zeros(1, 2, dtype=torch.bool),
        advantages=torch.tensor([3.0], dtype=F64),
    )
    assert out.loss.item() == 0.0
    assert out.metrics["humanline/unclipped_frac"].item() == 1.0
    out.loss.backward()
    assert (policy.grad == 0.0).all()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"epsilon": 0.0}, "epsilon"),
        ({"epsilon": 1.0}, "epsilon"),
        ({"kl_beta": -0.1}, "kl_beta"),
    ],
)
def test_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GRPOLoss(**kwargs)


# --- group_advantages -------------------------------------------------------------------------------


def test_group_advantages_interleaved_groups():
    """rewards [1, 10, 2, 10, 4, 7], groups [5, 2, 5, 2, 5, 9] (interleaved, non-contiguous ids).

    group 5 = [1, 2, 4]: mean 7/3, deviations [-4/3, -1/3, 5/3],
      population var = (16 + 1 + 25) / 9 / 3 = 14/9, std = sqrt(14)/3; A = dev / (std + 0.01)
    group 2 = [10, 10]: all equal -> 0;  group 9 = [7]: group of one -> 0
    """
    rewards = torch.tensor([1.0, 10.0, 2.0, 10.0, 4.0, 7.0], dtype=F64)
    adv = group_advantages(rewards, torch.tensor([5, 2, 5, 2, 5, 9]))
    std = math.sqrt(14) / 3
    expected = [(-4 / 3) / (std + 0.01), 0.0, (-1 / 3) / (std + 0.01), 0.0, (5 / 3) / (std + 0.01), 0.0]
    assert adv.tolist() == pytest.approx(expected, rel=1e-9)
    assert adv[1] == 0.0 and adv[3] == 0.0 and adv[5] == 0.0


@pytest.mark.parametrize("value, n, dtype", [(0.9, 3, torch.float32), (0.1, 3, F64), (0.7, 7, F64)])
def test_group_advantages_equal_rewards_are_exactly_zero(value, n, dtype):
    """n equal rewards: mean = value, deviations 0, std 0 -> A = 0 / (0 + 0.01) = 0 exactly.

    In floating point sum / n != value for these cases (e.g. fp64: 0.1 + 0.1 + 0.1 = 0.30000000000000004),
    so a naive mean leaves deviations of ~1e-17 that the division by ~1e-17 + 0.01 does not hide exactly.
    A group of one (the last item) is 0 too.
    """
    rewards = torch.tensor([value] * n + [-3.3], dtype=dtype)
    adv = group_advantages(rewards, torch.tensor([4] * n + [1]))
    assert adv.tolist() == [0.0] * (n + 1)


def test_group_advantages_eps():
    """Group [0, 2]: mean 1, deviations [-1, 1], std 1 -> A = [-1, 1] / (1 + eps).

    eps = 0.5 -> [-2/3, 2/3]; eps = 0 is refused (a group of one would give 0/0).
    """
    adv = group_advantages(torch.tensor([0.0, 2.0], dtype=F64), torch.tensor([0, 0]), eps=0.5)
    assert adv.tolist() == pytest.approx([-2 / 3, 2 / 3], rel=1e-12)
    with pytest.raises(ValueError, match="eps must be > 0"):
        group_advantages(torch.tensor([0.0, 2.0]), torch.tensor([0, 0]), eps=0.0)
