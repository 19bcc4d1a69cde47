"""Builders from hand-made rewards: which completions are chosen, labels, advantages, dropped prompts, batches."""

import itertools
import math

import pytest
import torch

from hl_lightning.data.batches import GroupBatch, PairedBatch, UnpairedBatch
from hl_lightning.online.builders import (
    BestWorstItems,
    GroupBuilder,
    PairBuilder,
    ThresholdItems,
    best_worst_pairs,
    group_advantages_of,
    threshold_labels,
)

PROMPT = [7, 8, 9]
COMPLETIONS = [[10], [11, 12], [13], [14, 15, 16]]  # completion k starts with token 10 + ...


def test_pair_is_first_best_and_first_worst():
    assert best_worst_pairs([0.0, 1.0, 0.5, 1.0]) == (1, 0)  # two best: the first (index 1) wins
    assert best_worst_pairs([1.0, 0.0, 0.0, 0.3]) == (0, 1)  # two worst: the first (index 1) wins
    assert best_worst_pairs([-2.0, 3.5]) == (1, 0)


def test_pair_dropped_when_gap_at_most_min_gap():
    assert best_worst_pairs([0.0, 0.01]) is None  # gap == min_gap: dropped
    assert best_worst_pairs([0.5, 0.5, 0.505]) is None
    assert best_worst_pairs([0.7, 0.7, 0.7, 0.7]) is None  # all equal
    assert best_worst_pairs([0.0, 0.02]) == (1, 0)
    assert best_worst_pairs([0.0, 0.02], min_gap=0.5) is None
    assert best_worst_pairs([0.3, 0.3], min_gap=0.0) is None  # a tie is never a pair


def test_pure_functions_reject_bad_input():
    with pytest.raises(ValueError, match=r"min_gap=-0\.1 must be >= 0"):
        best_worst_pairs([0.0, 1.0], min_gap=-0.1)
    with pytest.raises(ValueError, match="at least 2 completions"):
        best_worst_pairs([1.0])
    with pytest.raises(ValueError, match="at least 2 completions"):
        threshold_labels([1.0], 0.5)


def test_builders_reject_bad_options():
    with pytest.raises(ValueError, match=r"PairBuilder\(min_gap=-1\): min_gap must be >= 0"):
        PairBuilder(min_gap=-1)
    with pytest.raises(ValueError, match=r"BestWorstItems\(min_gap=-1\)"):
        BestWorstItems(min_gap=-1)
    with pytest.raises(ValueError, match=r"GroupBuilder\(advantage_eps=0\): advantage_eps must be > 0"):
        GroupBuilder(advantage_eps=0)


def test_group_advantages_hand_computed():
    std = math.sqrt(0.25 * 0.75)  # population std of [1, 0, 0, 0]
    expected = [0.75 / (std + 0.01)] + [-0.25 / (std + 0.01)] * 3
    assert group_advantages_of([1.0, 0.0, 0.0, 0.0]) == pytest.approx(expected, abs=1e-12)
    assert group_advantages_of([2.0, 0.0], eps=0.5) == pytest.approx([1 / 1.5, -1 / 1.5], abs=1e-12)


def test_all_equal_group_has_zero_advantage_not_nan():
    for value in (0.0, 0.7, 1e9):
        advantages = group_advantages_of([value] * 4)
        assert advantages == [0.0, 0.0, 0.0, 0.0] and not any(map(math.isnan, advantages))


def test_pair_builder_chooses_best_over_worst_and_batches_them():
    rewards = [0.2, 0.9, 0.1, 0.5]  # best = completion 1, worst = completion 2
    builder = PairBuilder()
    unit = builder.unit(PROMPT, COMPLETIONS, rewards)
    assert unit["chosen"]["input_ids"] == [*PROMPT, 11, 12]
    assert unit["rejected"]["input_ids"] == [*PROMPT, 13]
    assert builder.unit(PROMPT, COMPLETIONS, [0.5] * 4) is None
    batch = builder.collate([unit, unit], pad_id=0, max_length=64, ids=itertools.count(5))
    assert isinstance(batch, PairedBatch)
    assert batch.index.tolist() == [5, 6]
    assert batch.chosen.input_ids[0, :5].tolist() == [*PROMPT, 11, 12]
    assert batch.rejected.input_ids[0, :4].tolist() == [*PROMPT, 13]
    rows = builder.trl_rows({"prompt": "q", "answer": 3}, ["a", "b", "c", "d"], rewards)
    assert rows == [
        {"prompt": "q", "chosen": "b", "rejected": "c", "chosen_score": 0.9, "rejected_score": 0.1, "answer": 3}
    ]


def test_kto_builders_label_best_desirable_worst_undesirable():
    rewards = [0.2, 0.9, 0.1]
    best_worst = BestWorstItems()
    assert best_worst.labels(rewards) == [(1, True), (2, False)]
    assert best_worst.labels([0.9, 0.9, 0.1, 0.1]) == [(0, True), (2, False)]  # ties: first index
    assert best_worst.labels([0.4, 0.4]) == []
    assert best_worst.unit(PROMPT, COMPLETIONS, [0.4] * 4) is None
    threshold = ThresholdItems(threshold=0.5)
    assert threshold.labels([1.0, 0.0, 0.5, 0.7]) == [(0, True), (1, False), (2, False), (3, True)]
    assert threshold.labels([0.0, 0.0]) == [(0, False), (1, False)]  # never dropped
    items = best_worst.unit(PROMPT, COMPLETIONS[:3], rewards)
    assert [(it["completion_ids"], it["desirable"]) for it in items] == [([11, 12], True), ([13], False)]
    rows = best_worst.trl_rows({"prompt": "q"}, ["a", "b", "c"], rewards)
    assert [(r["completion"], r["label"], r["score"]) for r in rows] == [("b", True, 0.9), ("c", False, 0.1)]


def test_kto_collate_puts_other_prompts_next_to_each_other():
    """Items ordered (position in unit, unit): the KL row of item i pairs its prompt with another prompt's answer."""
    builder = BestWorstItems()
    unit_a = builder.unit([1, 1], [[21], [22]], [1.0, 0.0])
    unit_b = builder.unit([2, 2], [[31], [32]], [0.0, 1.0])
    batch = builder.collate([unit_a, unit_b], pad_id=0, max_length=64, ids=itertools.count())
    assert isinstance(batch, UnpairedBatch)
    assert batch.items.input_ids[:, :3].tolist() == [[1, 1, 21], [2, 2, 32], [1, 1, 22], [2, 2, 31]]
    assert batch.desirable.tolist() == [True, True, False, False]
    assert batch.kl.input_ids[:, :3].tolist() == [[1, 1, 32], [2, 2, 22], [1, 1, 31], [2, 2, 21]]


def test_group_builder_keeps_every_completion_with_its_advantage():
    builder = GroupBuilder()
    unit = builder.unit(PROMPT, COMPLETIONS[:2], [1.0, 0.0])
    assert unit["advantages"] == pytest.approx([0.5 / 0.51, -0.5 / 0.51], abs=1e-12)
    assert builder.unit(PROMPT, COMPLETIONS[:2], [1.0, 1.0])["advantages"] == [0.0, 0.0]  # never dropped
    batch = builder.collate([unit, unit], pad_id=0, max_length=64, ids=itertools.count())
    assert isinstance(batch, GroupBatch)
    assert batch.rows.shared == [[0, 1], [2, 3]]
    assert batch.group.tolist() == [0, 0, 1, 1]
    torch.testing.assert_close(batch.advantages, torch.tensor([0.5 / 0.51, -0.5 / 0.51] * 2), rtol=1e-6, atol=0)
