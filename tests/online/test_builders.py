"""Pairs, unpaired items and groups from hand-made rewards: ties, dropped prompts, all-equal groups."""

import math

import pytest

from hl_lightning.online.builders import best_worst_pairs, group_advantages_of, select, unpaired_labels


def test_pair_is_first_best_and_first_worst():
    assert best_worst_pairs([0.0, 1.0, 0.5, 1.0]) == (1, 0)  # two best: the first (index 1) wins
    assert best_worst_pairs([1.0, 0.0, 0.0, 0.3]) == (0, 1)  # two worst: the first (index 1) wins
    assert best_worst_pairs([-2.0, 3.5]) == (1, 0)


def test_pair_dropped_when_gap_at_most_threshold():
    assert best_worst_pairs([0.0, 0.01]) is None  # gap == threshold: dropped
    assert best_worst_pairs([0.5, 0.5, 0.505]) is None
    assert best_worst_pairs([0.7, 0.7, 0.7, 0.7]) is None  # all equal
    assert best_worst_pairs([0.0, 0.02]) == (1, 0)
    assert best_worst_pairs([0.0, 0.02], threshold=0.5) is None
    assert best_worst_pairs([0.3, 0.3], threshold=0.0) is None  # a tie is never a pair


def test_pair_rejects_bad_input():
    with pytest.raises(ValueError, match="threshold"):
        best_worst_pairs([0.0, 1.0], threshold=-0.1)
    with pytest.raises(ValueError, match="at least 2"):
        best_worst_pairs([1.0])


def test_unpaired_best_worst_and_threshold():
    assert unpaired_labels([0.2, 0.9, 0.1]) == [(1, True), (2, False)]
    assert unpaired_labels([0.9, 0.9, 0.1, 0.1]) == [(0, True), (2, False)]  # ties: first index
    assert unpaired_labels([0.4, 0.4]) == []  # dropped
    assert unpaired_labels([1.0, 0.0, 0.5, 0.7], mode="threshold", threshold=0.5) == [
        (0, True), (1, False), (2, False), (3, True)]  # strictly above the threshold is desirable
    assert unpaired_labels([0.0, 0.0], mode="threshold", threshold=0.5) == [(0, False), (1, False)]  # never dropped
    with pytest.raises(ValueError, match="mode"):
        unpaired_labels([0.0, 1.0], mode="median")


def test_group_advantages_hand_computed():
    std = math.sqrt(0.25 * 0.75)  # population std of [1, 0, 0, 0]
    expected = [0.75 / (std + 0.01)] + [-0.25 / (std + 0.01)] * 3
    assert group_advantages_of([1.0, 0.0, 0.0, 0.0]) == pytest.approx(expected, abs=1e-12)
    assert group_advantages_of([2.0, 0.0], eps=0.5) == pytest.approx([1 / 1.5, -1 / 1.5], abs=1e-12)


def test_all_equal_group_has_zero_advantage_not_nan():
    for value in (0.0, 0.7, 1e9):
        advantages = group_advantages_of([value] * 4)
        assert advantages == [0.0, 0.0, 0.0, 0.0] and not any(map(math.isnan, advantages))


def test_select_dispatches_per_objective():
    rewards = [0.0, 1.0, 0.6]
    assert select("dpo", rewards) == (1, 0)
    assert select("dpo", [1.0, 1.0]) is None
    assert select("kto", rewards) == [(1, True), (0, False)]
    assert select("kto", [1.0, 1.0]) is None  # best_worst drops a tie
    assert select("kto", rewards, kto_mode="threshold", kto_threshold=0.5) == [(0, False), (1, True), (2, True)]
    assert select("grpo", [1.0, 1.0]) == [0.0, 0.0]  # a group is never dropped
    assert select("dpo", [0.0, 0.3], pair_threshold=0.5) is None
    with pytest.raises(ValueError, match="objective"):
        select("ppo", rewards)
