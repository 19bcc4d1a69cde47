"""benchmarks/bench_online_dpo.py: both frameworks score with the same tie-free reward, and the report's ratio
(nothing is timed here)."""

from __future__ import annotations

import sys
import zlib
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bench_online_dpo
from bench.online_dpo import TieBreakReward, trl_reward


def test_the_tiebreak_keeps_exact_match_first_and_separates_different_texts():
    """Answer 5: "so 5" is right (1 + tiebreak), "so 4" and "so 6" wrong (0 + tiebreak); each tiebreak is
    1e-3 * (crc32(text) mod 1000) / 1000, below 1e-3, so a right answer always outranks a wrong one."""
    texts = ["so 5", "so 4", "so 6"]
    rewards = TieBreakReward()(["q"] * 3, texts, answer=[5, 5, 5])
    expected = [float(t == "so 5") + 1e-3 * (zlib.crc32(t.encode()) % 1000) / 1000 for t in texts]
    assert rewards == pytest.approx(expected, rel=1e-12)
    assert rewards[0] > 1 > 1e-3 > max(rewards[1:]) and rewards[1] != rewards[2]


def test_trl_gets_the_same_reward_from_conversational_completions():
    completions = [[{"role": "assistant", "content": "so 5"}], [{"role": "assistant", "content": "so 4"}]]
    assert trl_reward(["q", "q"], completions, answer=[5, 5]) == TieBreakReward()(
        ["q", "q"], ["so 5", "so 4"], answer=[5, 5]
    )


def test_defaults_are_the_issue_setup():
    args = bench_online_dpo.parse_args([])
    assert (args.model, args.steps, args.warmup, args.prompts_per_step, args.beta) == ("smollm2", 24, 4, 2, 0.1)
    with pytest.raises(SystemExit, match=r"^2$"):
        bench_online_dpo.parse_args(["--steps", "3", "--warmup", "3"])
