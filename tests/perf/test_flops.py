"""benchmarks/bench/flops.py and the fraction-of-peak columns: model FLOPs by hand (nothing is timed here)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from bench.flops import forward_flops, rows_work, step_flops
from bench.online import online_step_flops, summary
from bench.report import fraction_of_peak, merge_rounds

SHAPE = {"body": 10, "layers": 2, "width": 3, "vocab": 5}


def test_forward_flops_by_hand():
    """4 tokens, 10 attended (query, key) pairs, the head at 2 positions:
    2 * 10 * 4 (linears) + 4 * 2 * 3 * 10 (scores and values) + 2 * 5 * 3 * 2 (head) = 80 + 240 + 60 = 380."""
    assert forward_flops(SHAPE, 4, 10, 2) == 380
    assert step_flops(SHAPE, (4, 10, 2)) == 4 * 380  # policy forward + backward (3) + reference forward (1)
    assert step_flops(SHAPE, (4, 10, 2), reference=False) == 3 * 380


def test_rows_work_counts_a_shared_prompt_once():
    """Two rows share a 3-token prompt, completions of 2 and 4 tokens (rows of 5 and 7 real tokens, padded to 8).
    Tokens: 5 + 7 - 3 = 9. Causal pairs: 5*6/2 + 7*8/2 - 3*4/2 = 15 + 28 - 6 = 37. Head tokens: 2 + 4 = 6.
    Without sharing: 12 tokens and 43 pairs."""
    attention = torch.tensor([[1] * 5 + [0] * 3, [1] * 7 + [0]])
    completion = torch.tensor([[0, 0, 0, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1, 1, 0]], dtype=torch.bool)
    ids = torch.zeros(2, 8, dtype=torch.long)
    assert rows_work(ids, attention, completion, [[0, 1]]) == (9, 37, 6)
    assert rows_work(ids, attention, completion, []) == (12, 43, 6)


def test_online_step_flops_by_hand():
    """1 prompt of 2 tokens, 2 completions, 6 new tokens in the step (3 per completion).
    Prefill: forward(2 tokens, 3 pairs, 1 head). Decode, per completion: forward(3 tokens, 2*3 + 3*4/2 = 12 pairs,
    3 heads). Training (beta 0: no reference): 3 x forward(2 + 2*3 = 8 tokens, 3 + 2*12 = 27 pairs, 6 heads)."""
    spec = {"prompts_per_step": 1, "num_generations": 2, "beta": 0.0}
    rollout = forward_flops(SHAPE, 2, 3, 1) + 2 * forward_flops(SHAPE, 3, 12, 3)
    assert online_step_flops(SHAPE, spec, 2, 6, train=False) == pytest.approx(rollout, rel=1e-12)
    train = 3 * forward_flops(SHAPE, 8, 27, 6)
    assert online_step_flops(SHAPE, spec, 2, 6, train=True) == pytest.approx(rollout + train, rel=1e-12)
    with_ref = online_step_flops(SHAPE, {**spec, "beta": 0.04}, 2, 6, train=True)
    assert with_ref == pytest.approx(rollout + train * 4 / 3, rel=1e-12)


def test_online_summary_fraction_of_peak():
    """Steps of 2 s after warm-up; 12 new tokens over 2 steps (6 per step); FLOPs / 2 s / peak."""
    spec = {"prompts_per_step": 1, "num_generations": 2, "beta": 0.0}
    record = {"ends": [0.0, 1.0, 3.0], "gen_tokens": 12, "gen_s": 1.5, "shape": SHAPE, "peak_flops": 100.0}
    out = summary(record, warmup=1, spec=spec, prompt_tokens=2)
    assert out["median_s"] == 2.0 and out["tokens_per_s"] == 8.0
    assert out["fraction_of_peak"] == pytest.approx(online_step_flops(SHAPE, spec, 2, 6, True) / 2.0 / 100.0)
    bare = summary({**record, "rollout_only": True}, warmup=1, spec=spec, prompt_tokens=2)
    assert bare["model_flops"] == pytest.approx(online_step_flops(SHAPE, spec, 2, 6, train=False))


def test_trl_arm_takes_our_model_flops_for_the_fraction_of_peak():
    """The same job: trl-dpo's fraction uses ours-dpo's model FLOPs (1e9) with its own time (2 s) and peak."""
    round_ = {
        "ours-dpo": {"model_flops": 1e9, "median_s": 1.0, "peak_flops": 1e10},
        "trl-dpo": {"model_flops": None, "median_s": 2.0, "peak_flops": 1e10},
        "trl-dpo-peft": {"model_flops": None, "median_s": 2.0, "peak_flops": 1e10},
        "trl-dpo-retain": {"model_flops": None, "median_s": 4.0, "peak_flops": 1e10},
    }
    assert fraction_of_peak(round_, "ours-dpo") == pytest.approx(0.1)
    assert fraction_of_peak(round_, "trl-dpo") == pytest.approx(0.05)
    assert fraction_of_peak(round_, "trl-dpo-retain") == pytest.approx(0.025)  # the same job as ours-dpo
    assert fraction_of_peak(round_, "trl-dpo-peft") is None  # no counterpart of ours: n/a, not a guess


def test_merge_rounds_takes_the_median_fraction():
    """Three rounds at 0.1, 0.3 and 0.2 of peak: the merged arm reports their median, 0.2."""

    def arm(seconds):
        return {
            "timed": [seconds],
            "peak_rss_gb": 1.0,
            "median_s": seconds,
            "mean_tokens": 10,
            "wall_s": 1.0,
            "model_flops": 1e9,
            "peak_flops": 1e10,
        }

    merged = merge_rounds([{"ours-dpo": arm(1.0)}, {"ours-dpo": arm(1 / 3)}, {"ours-dpo": arm(0.5)}])
    assert merged["ours-dpo"]["fraction_of_peak"] == pytest.approx(0.2)
