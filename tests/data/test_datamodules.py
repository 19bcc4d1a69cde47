"""The DataModules: options, splits, batches exactly per docs/CONTRACTS.md, and deterministic shuffling."""

from __future__ import annotations

import logging
import re

import pytest
import torch

from hl_lightning.data import (
    DataError,
    GroupDataModule,
    PreferenceDataModule,
    ResumableSampler,
    UnpairedPreferenceDataModule,
)
from hl_lightning.objectives import group_advantages

PAIRS = [{"prompt": f"Question {i}?", "chosen": f"Good {i}.", "rejected": f"Bad {i}.", "answer": i} for i in range(20)]


def _completions(tokenizer, rows):
    return [tokenizer.decode(row[m]) for row, m in zip(rows.input_ids, rows.completion_mask, strict=True)]


def _prompts(rows):
    return [
        row[~m & a.bool()].tolist()
        for row, m, a in zip(rows.input_ids, rows.completion_mask, rows.attention_mask, strict=True)
    ]


def _ids(dm):
    loaders = (dm.train_dataloader(), dm.val_dataloader())
    return [i for loader in loaders for batch in loader for i in batch.index.tolist()]


def _number(text):
    return int(re.search(r"\d+", text).group())


def _ready(cls, **kwargs):
    module = cls(tokenizer="tiny-random", **kwargs)
    module.setup("fit")
    return module


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_prompt_length": 256, "max_length": 256}, "max_prompt_length=256 must be > 0 and < max_length=256"),
        ({"batch_size": 0}, "batch_size=0 must be >= 1"),
        ({"val_fraction": 1.0}, "val_fraction=1.0 must be strictly between 0 and 1"),
    ],
)
def test_options_are_validated_early(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PreferenceDataModule(**kwargs)
    with pytest.raises(ValueError, match="batch_size=1 must be >= 2 for UnpairedPreferenceDataModule"):
        UnpairedPreferenceDataModule(batch_size=1)
    with pytest.raises(ValueError, match="advantage_eps=0"):
        GroupDataModule(advantage_eps=0)


def test_paired_batches_name_chosen_and_rejected_rows(tokenizer, write_jsonl):
    path = str(write_jsonl("pairs.jsonl", PAIRS))
    dm = _ready(PreferenceDataModule, path=path, batch_size=3, val_fraction=0.25)
    assert (len(dm.train_set), len(dm.val_set), len(dm.held_out_rows())) == (15, 5, 5)
    batch = next(iter(dm.train_dataloader()))
    assert len(batch.chosen) == len(batch.rejected) == 3 and batch.index.shape == (3,)
    assert batch.chosen.attention_mask.dtype == torch.long and batch.chosen.completion_mask.dtype == torch.bool
    assert batch.chosen.keys.tolist() == (2 * batch.index).tolist()
    assert batch.rejected.keys.tolist() == (2 * batch.index + 1).tolist()
    chosen, rejected = _completions(tokenizer, batch.chosen), _completions(tokenizer, batch.rejected)
    prompts, rejected_prompts = _prompts(batch.chosen), _prompts(batch.rejected)
    for b in range(3):
        number = _number(chosen[b])
        assert chosen[b].startswith("Good") and rejected[b] == chosen[b].replace("Good", "Bad")
        assert prompts[b] == rejected_prompts[b] and f"Question {number}?" in tokenizer.decode(prompts[b])
    assert batch.rows().shared == [[0, 3], [1, 4], [2, 5]]
    val_prompts = {row["prompt"] for row in dm.held_out_rows()}
    train_answers = {_number(t) for b in dm.train_dataloader() for t in _completions(tokenizer, b.chosen)}
    assert len(train_answers) == 15 and not {f"Question {i}?" for i in train_answers} & val_prompts
    assert sorted(_ids(dm)) == list(range(20))  # unique across train and validation


def test_builtin_arithmetic_and_held_out_rows(write_jsonl):
    dm = _ready(PreferenceDataModule)
    assert (len(dm.train_set), len(dm.val_set)) == (400, 400)
    assert set(dm.held_out_rows()[0]) == {"prompt", "chosen", "rejected", "answer"}
    paths = {"path": str(write_jsonl("p.jsonl", PAIRS)), "val_path": str(write_jsonl("v.jsonl", PAIRS[:4]))}
    other = _ready(PreferenceDataModule, **paths)
    assert (len(other.train_set), len(other.held_out_rows())) == (20, 4)


def test_train_order_depends_only_on_seed_and_epoch():
    def epoch_order(dm, epoch):
        loader = dm.train_dataloader()
        loader.sampler.set_epoch(epoch)
        return [b.index.tolist() for b in loader]

    first, second = _ready(PreferenceDataModule, seed=1), _ready(PreferenceDataModule, seed=1)
    assert epoch_order(first, 3) == epoch_order(second, 3) != epoch_order(second, 4)
    assert epoch_order(first, 0) != epoch_order(_ready(PreferenceDataModule, seed=2), 0)
    val = [b.index.tolist() for b in first.val_dataloader()]
    order = [i for indices in val for i in indices]
    assert order == sorted(order)


def test_sampler_is_deterministic_sharded_and_skips_after_resume():
    """Order depends only on (seed, epoch); ranks get disjoint shards; skip_next drops a prefix once."""
    sampler = ResumableSampler(10, seed=3)
    sampler.set_epoch(1)
    order = list(sampler)
    assert sorted(order) == list(range(10)) and list(sampler) == order and len(sampler) == 10
    fresh = ResumableSampler(10, seed=3)
    assert list(fresh) != order
    fresh.set_epoch(1)
    assert list(fresh) == order
    fresh.skip_next(4)
    assert list(fresh) == order[4:] and list(fresh) == order
    ranks = [ResumableSampler(10, seed=3, num_replicas=2, rank=r) for r in (0, 1)]
    for shard in ranks:
        shard.set_epoch(1)
    assert sorted(i for shard in ranks for i in shard) == list(range(10))


def test_unpaired_items_and_mismatched_kl_pairs(tokenizer, write_jsonl, caplog):
    dm = _ready(UnpairedPreferenceDataModule, path=str(write_jsonl("pairs.jsonl", PAIRS)), batch_size=4)
    assert len(dm.train_set) == 36 and sum(item["desirable"] for item in dm.train_set) == 18
    batch = next(iter(dm.train_dataloader()))
    assert len(batch.items) == 4 and batch.desirable.dtype == torch.bool
    assert len(batch.kl) == 4 and batch.index.shape == (4,) and batch.kl.keys is None
    texts, kl_texts = _completions(tokenizer, batch.items), _completions(tokenizer, batch.kl)
    assert kl_texts == texts[1:] + texts[:1] and _prompts(batch.items) == _prompts(batch.kl)
    assert all(t.startswith("Good") == d for t, d in zip(texts, batch.desirable.tolist(), strict=True))
    assert batch.desirable.any() and not batch.desirable.all()
    rows = [{"prompt": "Q?", "completion": f"A{i}.", "label": i < 5} for i in range(6)]
    with caplog.at_level(logging.INFO):
        paths = {"path": str(write_jsonl("u.jsonl", rows)), "val_path": str(write_jsonl("v.jsonl", rows[:3]))}
        odd = _ready(UnpairedPreferenceDataModule, **paths)
    assert "ratio is 5.00, outside [0.5, 2]" in caplog.text
    assert [len(b) for b in odd.val_dataloader()] == [2]  # a lone item would be its own KL pair


def test_groups_keep_whole_groups_with_their_advantages(tokenizer, write_jsonl):
    sizes = [2, 3, 5, 2, 4]
    rows = [
        {
            "prompt": f"Q{g}?",
            "completions": [f"A{g}.{k}" for k in range(n)],
            "rewards": [float(k % 3) for k in range(n)],
        }
        for g, n in enumerate(sizes)
    ]
    paths = {"path": str(write_jsonl("g.jsonl", rows)), "val_path": str(write_jsonl("v.jsonl", rows))}
    dm = _ready(GroupDataModule, **paths, batch_size=2, advantage_eps=0.1)
    seen = []
    for batch in dm.train_dataloader():
        texts = _completions(tokenizer, batch.rows)
        assert batch.rows.shared == [(batch.group == g).nonzero().flatten().tolist() for g in batch.group.unique()]
        for g in batch.group.unique().tolist():
            members = batch.group == g
            source = _number(texts[members.nonzero()[0]])
            assert {_number(t) for t, m in zip(texts, members, strict=True) if m} == {source}
            assert members.sum() == sizes[source]
            rewards = torch.tensor(rows[source]["rewards"])
            expected = group_advantages(rewards, torch.zeros(sizes[source], dtype=torch.long), 0.1)
            torch.testing.assert_close(batch.advantages[members], expected)
            torch.testing.assert_close(batch.rewards[members], rewards)
            seen.append(source)
    assert sorted(seen) == list(range(5)) and dm.hparams.advantage_eps == 0.1
    assert sorted(_ids(dm)) == list(range(2 * sum(sizes)))


def test_pairs_become_groups_of_two(write_jsonl):
    scored = [dict(row, chosen_score=3.0, rejected_score=-1.0) for row in PAIRS[:2]]
    paths = {"path": str(write_jsonl("p.jsonl", scored)), "val_path": str(write_jsonl("v.jsonl", PAIRS[2:4]))}
    dm = _ready(GroupDataModule, **paths)
    assert [item["rewards"] for item in dm.train_set + dm.val_set] == [[3.0, -1.0]] * 2 + [[1.0, -1.0]] * 2
    assert dm.train_set[0]["advantages"] == pytest.approx([2 / 2.01, -2 / 2.01])  # population std 2
    assert dm.val_set[0]["advantages"] == pytest.approx([1 / 1.01, -1 / 1.01])


def test_invalid_rows_in_a_datamodule(write_jsonl, caplog):
    rows = [*PAIRS[:3], {"prompt": "Q", "chosen": "same", "rejected": "same"}, *PAIRS[3:6]]
    path = str(write_jsonl("bad.jsonl", rows))
    with pytest.raises(DataError, match=r"bad.jsonl, row 4: chosen and rejected are identical"):
        _ready(PreferenceDataModule, path=path)
    with caplog.at_level(logging.INFO):
        dm = _ready(PreferenceDataModule, path=path, skip_invalid=True, max_length=12, max_prompt_length=8)
    assert "bad.jsonl: dropped 1 of 7 rows (1 chosen == rejected)" in caplog.text
    assert "read 7 rows, dropped 1, truncated 12 sequences; 5 train and 1 validation items" in caplog.text
    assert all(b.chosen.width <= 12 and b.rejected.width <= 12 for b in dm.train_dataloader())
    with pytest.raises(DataError, match=r"bad.jsonl, row 1: the prompt has \d+ tokens.*set truncate=true"):
        _ready(PreferenceDataModule, path=path, max_length=12, max_prompt_length=8, truncate=False)
    with pytest.raises(DataError, match=r"x.jsonl: column 'completions' is missing.*columns option"):
        _ready(GroupDataModule, path=str(write_jsonl("x.jsonl", [{"prompt": "Q", "answer": 1}])))
