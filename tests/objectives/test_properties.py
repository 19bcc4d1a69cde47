"""Property-based tests (hypothesis) of the pure loss objects: DPOLoss, KTOLoss, GRPOLoss, their shared
ClipLogRatio / token_log_ratio, and group_advantages.

Every property runs for each loss it applies to, with and without a humanline clip, in float64:

* padding invariance: extra masked positions holding garbage (finite, huge, nan, +-inf) change neither
  the loss, the metrics nor the gradients at the real positions;
* row-order invariance: permuting pairs (DPO), items (KTO) or rows / groups (GRPO) leaves the loss
  unchanged and permutes the gradients the same way;
* masked positions get exactly zero gradient;
* a token whose log-ratio lies strictly outside the clip interval gets exactly zero gradient from the
  surrogate (for GRPO only the KL term, which uses the unclipped log-ratio by design, may reach it);
* finite log-probs give a finite loss, finite metrics and a finite gradient.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from hl_lightning.objectives import ClipLogRatio, group_advantages, token_log_ratio
from tests.objectives.loss_cases import (
    BOUNDS,
    F64,
    GARBAGE,
    GROUP_IDS,
    KINDS,
    LOGPS,
    PROPS,
    ROWS,
    TOL,
    WIDTH,
    anchor_key,
    assert_same,
    bool_arrays,
    cases,
    clipped_cases,
    evaluate,
    float_arrays,
    sides_of,
)


def _with_padding(data: st.DataObject, case: dict) -> tuple[dict, dict[str, int]]:
    """A copy of ``case`` with 1-3 masked columns appended to each side, and garbage in every masked slot."""
    inputs = dict(case["inputs"])
    widths = {}
    for mask_key, keys in sides_of(case):
        mask = inputs[mask_key]
        (b, t), extra = mask.shape, data.draw(st.integers(1, 3), label=f"extra columns for {mask_key}")
        widths[mask_key] = t
        for key in keys:
            junk = data.draw(float_arrays((b, t + extra), GARBAGE), label=f"garbage for {key}")
            junk[:, :t] = np.where(mask, inputs[key], junk[:, :t])
            inputs[key] = junk
        inputs[mask_key] = np.concatenate([mask, np.zeros((b, extra), dtype=bool)], axis=1)
    return {**case, "inputs": inputs}, widths


# ------------------------------------------------------------------------------------------------ padding


@pytest.mark.parametrize("clipped", [False, True], ids=["plain", "humanline"])
@pytest.mark.parametrize("kind", KINDS)
@PROPS
@given(data=st.data())
def test_padding_with_garbage_changes_nothing(kind, clipped, data):
    """Appended masked columns and garbage (nan, +-inf, huge) in masked slots: same loss, metrics, gradients."""
    case = data.draw(cases(kind, clipped), label="case")
    padded, widths = _with_padding(data, case)
    base, out = evaluate(case), evaluate(padded)
    assert_same(out, base)
    for mask_key, keys in sides_of(case):
        for key in keys:
            torch.testing.assert_close(out[2][key][:, : widths[mask_key]], base[2][key], **TOL)
            assert torch.all(out[2][key][:, widths[mask_key] :] == 0.0)


@pytest.mark.parametrize("clipped", [False, True], ids=["plain", "humanline"])
@pytest.mark.parametrize("kind", KINDS)
@PROPS
@given(data=st.data())
def test_masked_positions_get_exactly_zero_gradient(kind, clipped, data):
    """Whatever sits in a masked slot (garbage included), d loss / d logp there is exactly 0.0."""
    case, _ = _with_padding(data, data.draw(cases(kind, clipped), label="case"))
    _, _, grads = evaluate(case)
    for mask_key, keys in sides_of(case):
        masked = ~torch.from_numpy(case["inputs"][mask_key])
        for key in keys:
            assert torch.all(grads[key][masked] == 0.0), (key, grads[key])


# -------------------------------------------------------------------------------------------- row order


@pytest.mark.parametrize("clipped", [False, True], ids=["plain", "humanline"])
@pytest.mark.parametrize("kind", KINDS)
@PROPS
@given(data=st.data())
def test_row_order_does_not_matter(kind, clipped, data):
    """Permuting rows (DPO: chosen and rejected together; KTO: with ``desirable``, z0 fixed; GRPO: with
    the advantages, or with rewards and group ids so that whole groups move) keeps loss and metrics and
    permutes the gradients the same way."""
    case = data.draw(cases(kind, clipped), label="case")
    b = next(iter(case["inputs"].values())).shape[0]
    perm = np.array(data.draw(st.permutations(range(b)), label="permutation"), dtype=np.int64)
    permuted = {
        **case,
        "inputs": {k: v[perm] if isinstance(v, np.ndarray) else v for k, v in case["inputs"].items()},
    }
    base, out = evaluate(case), evaluate(permuted)
    assert_same(out, base)
    for key, grad in base[2].items():
        torch.testing.assert_close(out[2][key], grad[torch.from_numpy(perm)], **TOL)


# ------------------------------------------------------------------------------------------------- clip


@pytest.mark.parametrize("kind", KINDS)
@PROPS
@given(data=st.data())
def test_clipped_tokens_get_exactly_zero_gradient(kind, data):
    """A real token with log-ratio strictly outside [a, b] gets d loss / d logp = 0.0 exactly, for the
    policy, the reference and (GRPO) the old log-probs. GRPO runs with kl_beta = 0: its KL term is
    deliberately unclipped (see test_grpo_clip_leaves_only_the_kl_gradient)."""
    case = data.draw(clipped_cases(kind, kl_beta=st.just(0.0)), label="case")
    clip = case["loss"].clip
    _, _, grads = evaluate(case)
    n_clipped = 0
    for mask_key, keys in sides_of(case):
        inputs = case["inputs"]
        d = torch.from_numpy(inputs[keys[0]] - inputs[anchor_key(case, keys)])
        outside = torch.from_numpy(inputs[mask_key]) & ((d < clip.log_eps_P) | (d > clip.log_eps_R))
        n_clipped += int(outside.sum())
        for key in keys:
            assert torch.all(grads[key][outside] == 0.0), (key, grads[key], outside)
    assert n_clipped >= 1


@PROPS
@given(case=clipped_cases("grpo", kl_beta=st.floats(0.01, 1.0)))
def test_grpo_clip_leaves_only_the_kl_gradient(case):
    """With kl_beta > 0, a clipped token's policy gradient is exactly the KL term's, on the *unclipped*
    log-ratio to the reference: kl_beta * (1 - exp(-D_t)) / #real tokens, with D_t = lp_t - lr_t."""
    inputs, loss = case["inputs"], case["loss"]
    _, _, grads = evaluate(case)
    anchor = inputs.get("old_logps", inputs["ref_logps"])
    d_anchor = torch.from_numpy(inputs["policy_logps"] - anchor)
    mask = torch.from_numpy(inputs["mask"])
    outside = mask & ((d_anchor < loss.clip.log_eps_P) | (d_anchor > loss.clip.log_eps_R))
    assert outside.any()
    d_ref = torch.from_numpy(inputs["policy_logps"] - inputs["ref_logps"])
    expected = loss.kl_beta * (1 - torch.exp(-d_ref)) / mask.sum()
    torch.testing.assert_close(grads["policy_logps"][outside], expected[outside], rtol=1e-9, atol=1e-12)


@PROPS
@given(data=st.data())
def test_token_log_ratio_and_clip_gate_values_and_gradients(data):
    """token_log_ratio / ClipLogRatio token by token, for any weights w of the output: value clamp(D) on
    real tokens (D without a clip) and 0.0 on masked ones (garbage included); gradient w where
    a <= D <= b, 0.0 strictly outside and 0.0 on masked slots."""
    b, t = data.draw(ROWS, label="B"), data.draw(WIDTH, label="T")
    mask = torch.from_numpy(data.draw(bool_arrays((b, t)), label="mask"))
    clip = ClipLogRatio(*data.draw(BOUNDS, label="bounds")) if data.draw(st.booleans(), label="clipped") else None
    a, hi = (clip.log_eps_P, clip.log_eps_R) if clip else (-math.inf, math.inf)
    # ref = 0 and D = a bound put D exactly on that bound (policy - ref == D): it must keep its gradient.
    ref = torch.from_numpy(data.draw(float_arrays((b, t), st.one_of(LOGPS, st.just(0.0))), label="ref"))
    at_bounds = st.sampled_from([a, hi]) if clip else st.floats(-6.0, 6.0)
    d = data.draw(float_arrays((b, t), st.one_of(st.floats(-6.0, 6.0), at_bounds)), label="D")
    policy = ref + torch.from_numpy(d)
    junk = torch.from_numpy(data.draw(float_arrays((b, t), GARBAGE), label="garbage"))
    policy, ref = torch.where(mask, policy, junk), torch.where(mask, ref, junk.flip(-1))
    weights = torch.from_numpy(data.draw(float_arrays((b, t), st.floats(-5.0, 5.0)), label="weights"))

    policy.requires_grad_()
    out = token_log_ratio(policy, ref, mask, clip)
    (out * weights).sum().backward()
    d = (policy - ref).detach()
    inside = mask & (d >= a) & (d <= hi)
    assert torch.all(out[~mask] == 0.0)
    assert torch.equal(out[mask], d.clamp(a, hi)[mask])
    assert torch.equal(policy.grad, torch.where(inside, weights, 0.0))

    if clip is not None:  # the clip on its own, fed raw garbage at masked slots
        raw = torch.where(mask, d, junk).requires_grad_()
        clipped = clip(raw, mask)
        (clipped * weights).sum().backward()
        assert torch.equal(clipped, torch.where(mask, d.clamp(a, hi), 0.0))
        assert torch.equal(raw.grad, torch.where(inside, weights, 0.0))


# ---------------------------------------------------------------------------------------------- finite


@pytest.mark.parametrize("clipped", [False, True], ids=["plain", "humanline"])
@pytest.mark.parametrize("kind", KINDS)
@PROPS
@given(data=st.data())
def test_finite_inputs_give_finite_loss_metrics_and_gradients(kind, clipped, data):
    """Log-probs in [-30, 0] (any mask, empty rows or batch included): loss, metrics, gradients finite."""
    case = data.draw(cases(kind, clipped), label="case")
    loss, metrics, grads = evaluate(case)
    assert torch.isfinite(loss), loss
    for key, value in metrics.items():
        assert torch.isfinite(value).all(), (key, value)
    for key, grad in grads.items():
        assert torch.isfinite(grad).all(), (key, grad)


# ------------------------------------------------------------------------------------- group_advantages


@st.composite
def rewards_and_groups(draw, scale: float = 1e3) -> tuple[np.ndarray, np.ndarray]:
    n = draw(st.integers(1, 8))
    return (
        draw(float_arrays((n,), st.floats(-scale, scale))),
        draw(hnp.arrays(np.int64, (n,), elements=GROUP_IDS)),
    )


@PROPS
@given(data=st.data())
def test_group_advantages_follow_the_items(data):
    """Permuting the items permutes their advantages: groups are defined by id, not by position."""
    rewards, groups = data.draw(rewards_and_groups(), label="rewards, groups")
    perm = torch.tensor(data.draw(st.permutations(range(len(rewards))), label="permutation"))
    rewards, groups = torch.from_numpy(rewards), torch.from_numpy(groups)
    torch.testing.assert_close(
        group_advantages(rewards[perm], groups[perm]), group_advantages(rewards, groups)[perm], **TOL
    )


@PROPS
@given(rg=rewards_and_groups(scale=1e6), eps=st.floats(1e-3, 1.0))
def test_group_advantages_finite_and_centred(rg, eps):
    """Finite rewards give finite advantages that sum to 0 within each group (a group of one gets 0)."""
    rewards, groups = (torch.from_numpy(x) for x in rg)
    adv = group_advantages(rewards, groups, eps=eps)
    assert adv.dtype == F64 and torch.isfinite(adv).all()
    for g in groups.unique():
        torch.testing.assert_close(adv[groups == g].sum(), torch.zeros((), dtype=F64), rtol=0, atol=1e-6)
