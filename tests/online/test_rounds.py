"""A round without a model: dropped prompts, top-up rollouts, dealing into batches, prompt sharding."""

from types import SimpleNamespace

import pytest
import torch

from hl_lightning.online.items import PromptStream, collate_units, make_unit
from hl_lightning.online.prompts import Prompt
from hl_lightning.online.rollout import Rollout, SamplingConfig
from hl_lightning.online.rounds import RoundBuilder
from tests.online.helpers import HashReward

PROMPTS = [Prompt(row={"prompt": f"Q{i}", "answer": i}, messages=[{"role": "user", "content": f"Q{i}"}],
                  prompt_ids=[100 + i]) for i in range(8)]
OPTIONS = dict(pair_threshold=0.01, kto_mode="best_worst", kto_threshold=0.5, advantage_eps=0.01)


def builder(objective, rewards_of, monkeypatch, max_rollouts=3):
    """A RoundBuilder whose rollouts are hand-made: completion g of prompt i is [i, g], rewarded rewards_of(i)."""
    def fake(policy, tokenizer, rows, messages, reward, sampling, seed, progress):
        ids = [[[row["answer"], g] for g in range(3)] for row in rows]
        return Rollout(rows=rows, texts=[["x"] * 3 for _ in rows], completion_ids=ids,
                       truncated=[[False, True, False] for _ in rows], rewards=[rewards_of(r["answer"]) for r in rows],
                       correct=None, num_tokens=6 * len(rows), seconds=0.5)

    monkeypatch.setattr("hl_lightning.online.rounds.sample_and_score", fake)
    return RoundBuilder(objective, HashReward(), PROMPTS, SimpleNamespace(pad_token_id=0),
                        SamplingConfig(num_generations=3), OPTIONS, max_rollouts=max_rollouts)


def test_dpo_round_drops_tied_prompts_and_deals_pairs(monkeypatch):
    rounds = builder("dpo", lambda i: [0.5, 0.5, 0.5] if i % 2 else [0.0, 1.0, 0.2], monkeypatch)
    batches, metrics = rounds.run(None, num_batches=2, prompts_per_round=4)
    order = PromptStream(8, seed=0).take(4)
    kept = [i for i in order if i % 2 == 0]
    assert metrics["rollout/dropped_prompts"] == 4 - len(kept) and metrics["rollout/prompts"] == 4
    assert metrics["completions/clipped_ratio"] == pytest.approx(1 / 3)
    total = sum(sum([0.5] * 3 if i % 2 else [0.0, 1.0, 0.2]) for i in order)
    assert metrics["reward/mean"] == pytest.approx(total / 12)
    chosen = [row[m].tolist() for b in batches for row, m in zip(b["input_ids"][: len(b["index"])],
                                                                  b["completion_mask"][: len(b["index"])])]
    assert sorted(chosen) == sorted([[i, 1] for i in kept])  # best completion = index 1


def test_round_samples_again_until_every_batch_has_data(monkeypatch):
    first = set(PromptStream(8, seed=0).take(2))
    rounds = builder("dpo", lambda i: [0.3] * 3 if i in first else [0.0, 1.0, 0.2], monkeypatch)
    batches, metrics = rounds.run(None, num_batches=2, prompts_per_round=2)
    assert rounds.calls == 2 and metrics["rollout/prompts"] == 4 and metrics["rollout/dropped_prompts"] == 2
    assert [len(b["index"]) for b in batches] == [1, 1]


def test_round_fails_clearly_when_the_reward_never_separates(monkeypatch):
    rounds = builder("kto", lambda i: [1.0, 1.0, 1.0], monkeypatch, max_rollouts=3)
    with pytest.raises(RuntimeError, match=r"3 rollouts.*crc32.*pair_threshold=0.01.*kto_mode: threshold"):
        rounds.run(None, num_batches=1, prompts_per_round=2)


def test_all_equal_group_is_kept_with_zero_advantages(monkeypatch):
    rounds = builder("grpo", lambda i: [0.7, 0.7, 0.7] if i % 2 else [1.0, 0.0, 0.0], monkeypatch)
    batches, metrics = rounds.run(None, num_batches=1, prompts_per_round=4)
    (batch,) = batches
    assert metrics["rollout/dropped_prompts"] == 0 and batch["group"].tolist() == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3
    for g, i in enumerate(PromptStream(8, seed=0).take(4)):
        advantages = batch["advantages"][batch["group"] == g]
        assert torch.isfinite(advantages).all()
        assert (advantages == 0).all() == bool(i % 2)
    assert len(set(batch["index"].tolist())) == 12


def test_kto_items_interleave_prompts_so_kl_pairs_are_mismatched():
    units = [make_unit("kto", [100 + p], [[p, 0], [p, 1]], [1.0, 0.0], [(0, True), (1, False)]) for p in range(2)]
    batch = collate_units("kto", units, pad_id=0, max_length=16, ids=iter(range(10)))
    assert batch["desirable"].tolist() == [True, True, False, False]
    assert batch["input_ids"][:, 0].tolist() == [100, 101, 100, 101]  # prompts alternate
    kl_prompts, kl_owner = batch["kl_input_ids"][:, 0].tolist(), batch["kl_input_ids"][:, 1].tolist()
    assert all(p - 100 != owner for p, owner in zip(kl_prompts, kl_owner))  # never a prompt's own completion


def test_prompt_stream_shards_ranks_and_reshuffles_per_pass():
    ranks = [PromptStream(10, seed=3, rank=r, world=2) for r in range(2)]
    first = [s.take(5) for s in ranks]
    assert sorted(first[0] + first[1]) == list(range(10))  # one pass over the prompts, split between ranks
    second = [s.take(5) for s in ranks]
    assert sorted(second[0] + second[1]) == list(range(10)) and second != first
    assert PromptStream(10, seed=3, rank=1, world=2).take(10) == first[1] + second[1]  # deterministic
