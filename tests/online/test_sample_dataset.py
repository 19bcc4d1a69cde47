"""The offline dataset writer: tiny model samples -> TRL JSONL + metadata -> the offline data modules."""

import json

import pytest

from hl_lightning.data import GroupDataModule, PreferenceDataModule, UnpairedPreferenceDataModule
from hl_lightning.online import BestWorstItems, PairBuilder, SamplingConfig
from hl_lightning.online.sample_dataset import main, write_dataset
from tests.online.helpers import HashReward

SAMPLING = dict(limit=6, sampling=SamplingConfig(num_generations=3, max_new_tokens=5, temperature=1.0), seed=1)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, lively_weights, tokenizer):
    """The lively tiny model and its tokenizer, saved with save_pretrained."""
    from hl_lightning.models.loading import load_causal_lm

    model = load_causal_lm("tiny-random")
    model.load_state_dict(lively_weights)
    path = tmp_path_factory.mktemp("lively")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def _read(module_cls, path, **kwargs):
    data = module_cls(
        path=str(path), val_path=str(path), tokenizer="tiny-random", max_length=64, max_prompt_length=48, **kwargs
    )
    data.setup()
    return data


@pytest.mark.parametrize(
    "fmt, builder, module_cls",
    [("pairs", PairBuilder(), PreferenceDataModule), ("unpaired", BestWorstItems(), UnpairedPreferenceDataModule)],
)
def test_write_and_read_back(fmt, builder, module_cls, model_dir, tmp_path, monkeypatch, tokenizer):
    monkeypatch.setattr("hl_lightning.data.base.load_tokenizer", lambda spec: tokenizer)
    out = write_dataset(model_dir, str(tmp_path / f"{fmt}.jsonl"), builder, HashReward(), **SAMPLING)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 6 * (1 if fmt == "pairs" else 2)  # distinct hash rewards: no prompt dropped
    assert all(isinstance(row["answer"], int) for row in rows)
    if fmt == "pairs":
        assert all(row["chosen_score"] > row["rejected_score"] for row in rows)
    else:  # per prompt: the best completion desirable, then the worst undesirable
        assert [row["label"] for row in rows] == [True, False] * 6
        assert all(a["score"] > b["score"] for a, b in zip(rows[::2], rows[1::2], strict=True))
    data = _read(module_cls, out)
    assert len(data.train_set) == (6 if fmt == "pairs" else 12)
    next(iter(data.train_dataloader()))
    meta = json.loads((tmp_path / f"{fmt}.jsonl.meta.json").read_text())
    assert meta["model"] == model_dir and meta["builder"] == repr(builder) and meta["seed"] == 1
    assert meta["sampling"] == {
        "num_generations": 3,
        "max_new_tokens": 5,
        "temperature": 1.0,
        "top_p": 0.95,
        "batch_size": 16,
    }
    assert meta["reward"]["class_path"] == "tests.online.helpers.HashReward" and meta["reward"]["name"] == "crc32"
    assert meta["rows"] == len(rows) and meta["dropped_prompts"] == 0


def test_command_line_writes_groups_with_the_reward_config(model_dir, tmp_path, monkeypatch, tokenizer, capsys):
    monkeypatch.setattr("hl_lightning.data.base.load_tokenizer", lambda spec: tokenizer)
    out = tmp_path / "groups.jsonl"
    main(
        [
            "--model",
            model_dir,
            "--output",
            str(out),
            "--builder",
            "GroupBuilder",
            "--limit",
            "4",
            "--sampling.num_generations",
            "2",
            "--sampling.max_new_tokens",
            "4",
            "--reward.class_path",
            "hl_lightning.rewards.ExactMatchReward",
            "--reward.init_args.wrong",
            "-1.0",
        ]
    )
    assert str(out) in capsys.readouterr().out
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 4 and all(len(r["completions"]) == 2 and len(r["rewards"]) == 2 for r in rows)
    meta = json.loads(out.with_name("groups.jsonl.meta.json").read_text())
    assert meta["reward"] == {
        "class_path": "hl_lightning.rewards.ExactMatchReward",
        "init_args": {"correct": 1.0, "wrong": -1.0},
    }
    assert meta["sampling"]["num_generations"] == 2 and meta["sampling"]["temperature"] == 0.7
    assert len(_read(GroupDataModule, out).train_set) == 4
