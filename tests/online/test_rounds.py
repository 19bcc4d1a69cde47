"""A round without a model: dropped prompts, top-up rollouts, dealing into batches, prompt sharding."""

from types import SimpleNamespace

import pytest
import torch

from hl_lightning.data.batches import SkippedBatch
from hl_lightning.data.prompts import Prompt
from hl_lightning.online.builders import BestWorstItems, GroupBuilder, PairBuilder
from hl_lightning.online.rollout import Rollout, SamplingConfig
from hl_lightning.online.rounds import RoundBuilder
from hl_lightning.online.stream import PromptStream
from tests.online.helpers import HashReward

PROMPTS = [
    Prompt(row={"prompt": f"Q{i}", "answer": i}, messages=[{"role": "user", "content": f"Q{i}"}], prompt_ids=[100 + i])
    for i in range(8)
]


def builder(item_builder, rewards_of, monkeypatch, max_rollouts=3, on_starved="train"):
    """A RoundBuilder whose rollouts are hand-made: completion g of prompt i is [i, g], rewarded rewards_of(i)."""

    def fake(policy, tokenizer, rows, messages, reward, sampling, seed, progress):
        ids = [[[row["answer"], g] for g in range(3)] for row in rows]
        return Rollout(
            rows=rows,
            texts=[["x"] * 3 for _ in rows],
            completion_ids=ids,
            truncated=[[False, True, False] for _ in rows],
            rewards=[rewards_of(r["answer"]) for r in rows],
            correct=None,
            num_tokens=6 * len(rows),
            seconds=0.5,
        )

    monkeypatch.setattr("hl_lightning.online.rounds.sample_and_score", fake)
    return RoundBuilder(
        item_builder,
        HashReward(),
        PROMPTS,
        SimpleNamespace(pad_token_id=0),
        SamplingConfig(num_generations=3),
        max_rollouts=max_rollouts,
        on_starved=on_starved,
    )


def test_dpo_round_drops_tied_prompts_and_deals_pairs(monkeypatch):
    rounds = builder(PairBuilder(), lambda i: [0.5, 0.5, 0.5] if i % 2 else [0.0, 1.0, 0.2], monkeypatch)
    batches, metrics = rounds.run(None, num_batches=2, prompts_per_round=4)
    order = PromptStream(8, seed=0).take(4)
    kept = [i for i in order if i % 2 == 0]
    assert metrics["rollout/dropped_prompts"] == 4 - len(kept) and metrics["rollout/prompts"] == 4
    assert metrics["completions/clipped_ratio"] == pytest.approx(1 / 3)
    total = sum(sum([0.5] * 3 if i % 2 else [0.0, 1.0, 0.2]) for i in order)
    assert metrics["reward/mean"] == pytest.approx(total / 12)
    chosen = [
        row[m].tolist() for b in batches for row, m in zip(b.chosen.input_ids, b.chosen.completion_mask, strict=True)
    ]
    rejected = [
        row[m].tolist()
        for b in batches
        for row, m in zip(b.rejected.input_ids, b.rejected.completion_mask, strict=True)
    ]
    assert sorted(chosen) == sorted([[i, 1] for i in kept])  # best completion = index 1
    assert sorted(rejected) == sorted([[i, 0] for i in kept])  # worst completion = index 0


def test_round_samples_again_until_every_batch_has_data(monkeypatch):
    first = set(PromptStream(8, seed=0).take(2))
    rounds = builder(PairBuilder(), lambda i: [0.3] * 3 if i in first else [0.0, 1.0, 0.2], monkeypatch)
    batches, metrics = rounds.run(None, num_batches=2, prompts_per_round=2)
    assert rounds.calls == 2 and metrics["rollout/prompts"] == 4 and metrics["rollout/dropped_prompts"] == 2
    assert [len(b) for b in batches] == [1, 1]
    assert metrics["rollout/starved_rounds"] == 0


def test_on_starved_error_fails_clearly_when_the_reward_never_separates(monkeypatch):
    rounds = builder(BestWorstItems(), lambda i: [1.0, 1.0, 1.0], monkeypatch, max_rollouts=3, on_starved="error")
    with pytest.raises(RuntimeError, match=r"on_starved: error.*3 rollouts.*crc32.*min_gap=0.01.*ThresholdItems"):
        rounds.run(None, num_batches=1, prompts_per_round=2)


def test_constant_reward_starves_the_round_into_a_skipped_step(monkeypatch, caplog):
    rounds = builder(PairBuilder(), lambda i: [1.0, 1.0, 1.0], monkeypatch, max_rollouts=3)
    batches, metrics = rounds.run(None, num_batches=2, prompts_per_round=2)
    assert len(batches) == 1 and isinstance(batches[0], SkippedBatch) and len(batches[0]) == 0
    assert rounds.calls == 3 and metrics["rollout/starved_rounds"] == 1 and metrics["rollout/prompts"] == 6
    assert "Starved online round 1" in caplog.text and "skipping this optimizer step" in caplog.text
    rounds.run(None, num_batches=2, prompts_per_round=2)
    assert rounds.starved == 2


def test_starved_round_trains_on_what_it_kept(monkeypatch, caplog):
    """One prompt in 8 separates: 3 rollouts of 2 prompts keep fewer pairs than the 4 batches the round wants."""
    rounds = builder(PairBuilder(), lambda i: [0.0, 1.0, 0.2] if i == 5 else [0.4] * 3, monkeypatch, max_rollouts=3)
    order = PromptStream(8, seed=0).take(6)
    batches, metrics = rounds.run(None, num_batches=4, prompts_per_round=2)
    assert len(batches) == order.count(5) >= 1 and metrics["rollout/starved_rounds"] == 1
    assert all(b.chosen.input_ids[0].tolist() == [105, 5, 1] for b in batches)  # prompt 5, best completion
    assert "training on what was kept" in caplog.text


def test_all_equal_group_is_kept_with_zero_advantages(monkeypatch):
    rounds = builder(GroupBuilder(), lambda i: [0.7, 0.7, 0.7] if i % 2 else [1.0, 0.0, 0.0], monkeypatch)
    batches, metrics = rounds.run(None, num_batches=1, prompts_per_round=4)
    (batch,) = batches
    assert metrics["rollout/dropped_prompts"] == 0 and batch.group.tolist() == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3
    winner = [1.0 - 1 / 3, -1 / 3, -1 / 3]  # rewards [1, 0, 0]: mean 1/3, population std sqrt(2)/3
    expected = torch.tensor(winner) / (2**0.5 / 3 + 0.01)
    for g, i in enumerate(PromptStream(8, seed=0).take(4)):
        advantages = batch.advantages[batch.group == g]
        torch.testing.assert_close(advantages, torch.zeros(3) if i % 2 else expected, rtol=1e-6, atol=1e-7)
    assert len(set(batch.index.tolist())) == 12


def test_kto_items_interleave_prompts_so_kl_pairs_are_mismatched(monkeypatch):
    rounds = builder(BestWorstItems(), lambda i: [1.0, 0.0, 0.5], monkeypatch)
    (batch,), _ = rounds.run(None, num_batches=1, prompts_per_round=2)
    assert batch.desirable.tolist() == [True, True, False, False]
    owners = batch.items.input_ids[:, 0].tolist()  # completion g of prompt i is [i, g], after prompt id 100 + i
    assert owners[0] != owners[1] and owners[:2] == owners[2:]  # prompts alternate
    kl_prompts, kl_owner = batch.kl.input_ids[:, 0].tolist(), batch.kl.input_ids[:, 1].tolist()
    assert all(
        p - 100 != owner for p, owner in zip(kl_prompts, kl_owner, strict=True)
    )  # never a prompt's own completion


def test_prompt_stream_shards_ranks_and_reshuffles_per_pass():
    ranks = [PromptStream(10, seed=3, rank=r, world=2) for r in range(2)]
    first = [s.take(5) for s in ranks]
    assert sorted(first[0] + first[1]) == list(range(10))  # one pass over the prompts, split between ranks
    second = [s.take(5) for s in ranks]
    assert sorted(second[0] + second[1]) == list(range(10)) and second != first
    assert PromptStream(10, seed=3, rank=1, world=2).take(10) == first[1] + second[1]  # deterministic
