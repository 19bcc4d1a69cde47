"""Loss cases for the property tests (test_properties.py): hypothesis strategies that draw the inputs of
DPOLoss, KTOLoss and GRPOLoss (float64, with or without a clip), and the evaluation of a case (loss, metrics and
the gradients of every log-prob input)."""

from __future__ import annotations

import math

import numpy as np
import torch
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from hl_lightning.objectives import ClipLogRatio, DPOLoss, GRPOLoss, KTOLoss, group_advantages

F64 = torch.float64
KINDS = ("dpo", "kto", "grpo")
TOL = {"rtol": 1e-6, "atol": 1e-9}

PROPS = settings(max_examples=30, deadline=None, derandomize=True, database=None)

# Finite log-probs (policy, reference, old policy), often at an end of the range: that is where sums
# of log-ratios, margins and exp() get extreme.
LOGPS = st.one_of(st.floats(-30.0, 0.0), st.floats(-30.0, 0.0), st.sampled_from([-30.0, 0.0]))
BETAS = st.one_of(st.floats(0.01, 10.0), st.sampled_from([0.01, 10.0, 100.0]))  # DPO / KTO temperature
GARBAGE = st.one_of(st.sampled_from([math.nan, math.inf, -math.inf]), st.floats())  # anything, nan and inf too
BOUNDS = st.tuples(st.floats(-3.0, -0.05), st.floats(0.05, 3.0))  # (log_eps_P, log_eps_R)
ROWS = st.integers(1, 4)
WIDTH = st.integers(1, 6)
GROUP_IDS = st.sampled_from([0, 3, 7])  # not contiguous on purpose

# The (B, T) token tensors of each loss, by the mask that governs them. Every array in a case's inputs
# is indexed by row first, so a row permutation applies to all of them alike.
SIDES = {
    "dpo": (
        ("chosen_mask", ("policy_chosen_logps", "ref_chosen_logps")),
        ("rejected_mask", ("policy_rejected_logps", "ref_rejected_logps")),
    ),
    "kto": (("mask", ("policy_logps", "ref_logps")),),
    "grpo": (("mask", ("policy_logps", "ref_logps", "old_logps")),),
}


def float_arrays(shape: tuple[int, ...], elements: st.SearchStrategy = LOGPS) -> st.SearchStrategy:
    return hnp.arrays(np.float64, shape, elements=elements)


def bool_arrays(shape: tuple[int, ...]) -> st.SearchStrategy:
    return hnp.arrays(np.bool_, shape)


def sides_of(case: dict) -> list[tuple[str, list[str]]]:
    """(mask key, token keys present) for each side of the case."""
    return [(m, [k for k in keys if k in case["inputs"]]) for m, keys in SIDES[case["kind"]]]


def anchor_key(case: dict, token_keys: list[str]) -> str:
    """The log-probs the clipped ratio is taken against: old_logps for GRPO when given, else the ref."""
    return "old_logps" if "old_logps" in token_keys else token_keys[1]


@st.composite
def cases(draw, kind: str, clipped: bool, kl_beta: st.SearchStrategy | None = None) -> dict:
    """A loss object and its inputs as numpy arrays; masks may leave rows (or everything) empty."""
    b = draw(ROWS)
    clip = ClipLogRatio(*draw(BOUNDS)) if clipped else None

    def side(t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return draw(float_arrays((b, t))), draw(float_arrays((b, t))), draw(bool_arrays((b, t)))

    if kind == "dpo":
        (pc, rc, mc), (pr, rr, mr) = side(draw(WIDTH)), side(draw(WIDTH))
        loss = DPOLoss(beta=draw(BETAS), clip=clip)
        inputs = {
            "policy_chosen_logps": pc,
            "ref_chosen_logps": rc,
            "chosen_mask": mc,
            "policy_rejected_logps": pr,
            "ref_rejected_logps": rr,
            "rejected_mask": mr,
        }
    elif kind == "kto":
        p, r, m = side(draw(WIDTH))
        loss = KTOLoss(
            beta=draw(BETAS),
            desirable_weight=draw(st.floats(0.1, 3.0)),
            undesirable_weight=draw(st.floats(0.1, 3.0)),
            clip=clip,
        )
        inputs = {
            "policy_logps": p,
            "ref_logps": r,
            "mask": m,
            "desirable": draw(bool_arrays((b,))),
            "kl": draw(st.floats(0.0, 5.0)),
        }
    else:
        t = draw(WIDTH)
        p, r, m = side(t)
        inputs = {"policy_logps": p, "ref_logps": r, "mask": m}
        if draw(st.booleans()):
            inputs["old_logps"] = draw(float_arrays((b, t)))
        if draw(st.booleans()):
            inputs["advantages"] = draw(float_arrays((b,), st.floats(-10.0, 10.0)))
        else:  # advantages from group_advantages, so that a permutation moves whole groups
            inputs["rewards"] = draw(float_arrays((b,), st.floats(-10.0, 10.0)))
            inputs["group_ids"] = draw(hnp.arrays(np.int64, (b,), elements=GROUP_IDS))
        kl_beta = kl_beta if kl_beta is not None else st.one_of(st.just(0.0), st.floats(0.0, 1.0))
        loss = GRPOLoss(epsilon=draw(st.floats(0.05, 0.95)), kl_beta=draw(kl_beta), clip=clip)
    return {"kind": kind, "loss": loss, "inputs": inputs}


@st.composite
def clipped_cases(draw, kind: str, kl_beta: st.SearchStrategy | None = None) -> dict:
    """A clipped case whose log-ratios to the anchor span [-6, 6], with at least one real clipped token."""
    case = draw(cases(kind, clipped=True, kl_beta=kl_beta))
    inputs, clip = case["inputs"], case["loss"].clip
    sides = sides_of(case)
    for _, keys in sides:
        anchor = inputs[anchor_key(case, keys)]
        inputs[keys[0]] = anchor + draw(float_arrays(anchor.shape, st.floats(-6.0, 6.0)))
    mask_key, keys = sides[draw(st.integers(0, len(sides) - 1))]
    b, t = inputs[mask_key].shape
    i, j = draw(st.integers(0, b - 1)), draw(st.integers(0, t - 1))
    gap = draw(st.floats(0.01, 3.0))
    d = clip.log_eps_R + gap if draw(st.booleans()) else clip.log_eps_P - gap
    inputs[mask_key][i, j] = True
    inputs[keys[0]][i, j] = inputs[anchor_key(case, keys)][i, j] + d
    return case


def evaluate(case: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Loss, metrics and the gradient of the loss w.r.t. every (B, T) log-prob tensor (0 where unused)."""
    kwargs, leaves = {}, {}
    for key, value in case["inputs"].items():
        if key in ("rewards", "group_ids"):
            continue
        if isinstance(value, np.ndarray):
            value = torch.from_numpy(value.copy())
            if value.dtype == F64 and value.dim() == 2:
                leaves[key] = value.requires_grad_()
        kwargs[key] = value
    if "rewards" in case["inputs"]:
        kwargs["advantages"] = group_advantages(
            torch.from_numpy(case["inputs"]["rewards"].copy()), torch.from_numpy(case["inputs"]["group_ids"].copy())
        )
    out = case["loss"](**kwargs)
    out.loss.backward()
    grads = {k: v.grad if v.grad is not None else torch.zeros_like(v) for k, v in leaves.items()}
    return out.loss.detach(), out.metrics, grads


def assert_same(actual: tuple, expected: tuple) -> None:
    """Same loss and metrics (within TOL)."""
    torch.testing.assert_close(actual[0], expected[0], **TOL)
    assert actual[1].keys() == expected[1].keys()
    for key in expected[1]:
        torch.testing.assert_close(actual[1][key], expected[1][key], **TOL, msg=lambda m, key=key: f"{key}: {m}")
