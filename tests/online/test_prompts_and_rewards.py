"""Prompt files (split, held-out rows, errors) and an online run scored by a tiny reward model."""

import json

import pytest
import torch
from transformers import LlamaConfig, LlamaForSequenceClassification

from hl_lightning.data import DataError
from hl_lightning.modules import GRPOModule
from hl_lightning.rewards import RewardModelReward
from tests.helpers import trainer
from tests.online.helpers import adamw, online_data


def _write(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def test_arithmetic_prompts_and_held_out_rows():
    data = online_data()
    data.setup()
    assert len(data.train_prompts) == 400 and len(data.held_out_rows()) == 400
    assert set(data.held_out_rows()[0]) == {"prompt", "answer"}
    assert data.train_prompts[0].messages == [{"role": "user", "content": data.train_prompts[0].row["prompt"]}]


def test_custom_prompt_file_is_split_and_columns_mapped(tmp_path):
    path = _write(tmp_path / "p.jsonl", [{"question": f"What is {i} + 1?", "answer": i + 1} for i in range(10)])
    data = online_data(prompts=path, columns={"prompt": "question"}, val_fraction=0.2)
    data.setup()
    assert len(data.train_prompts) == 8 and len(data.held_out_rows()) == 2
    assert {r["answer"] for r in data.held_out_rows()} | {p.row["answer"] for p in data.train_prompts} == set(
        range(1, 11)
    )


def test_bad_prompt_rows_name_file_and_row(tmp_path):
    path = _write(tmp_path / "bad.jsonl", [{"prompt": "Hi?"}, {"prompt": "word " * 200}, {"prompt": "Yo?"}])
    with pytest.raises(DataError, match=r"bad.jsonl, row 2: the prompt has \d+ tokens, more than max_prompt_length"):
        online_data(prompts=path, val_path=path).setup()
    data = online_data(prompts=path, val_path=path, skip_invalid=True)
    data.setup()
    assert len(data.train_prompts) == 2
    with pytest.raises(DataError, match="column 'prompt' is missing"):
        online_data(prompts=_write(tmp_path / "q.jsonl", [{"q": "x"}] * 2), val_path=path).setup()


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(sample_every_n_steps=0), r"sample_every_n_steps=0\): sample_every_n_steps must be >= 1"),
        (dict(prompts_per_step=0), r"prompts_per_step must be >= 1"),
        (dict(max_rollouts_per_round=0), r"max_rollouts_per_round must be >= 1"),
        (dict(on_starved="ignore"), r"on_starved='ignore'\): choose 'train' or 'error'"),
        (dict(num_generations=1), r"num_generations=1 must be >= 2"),
        (dict(temperature=0.0), r"Need temperature > 0"),
    ],
)
def test_bad_options_fail_early(bad, message):
    with pytest.raises(ValueError, match=message):
        online_data(**bad)


@pytest.fixture(scope="module")
def rm_dir(tmp_path_factory, tokenizer):
    """A tiny random sequence-classification reward model and its tokenizer, saved to disk."""
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
    )
    path = tmp_path_factory.mktemp("rm")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        LlamaForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def test_online_run_scored_by_a_reward_model(rm_dir, tmp_path, lively_model):
    fitted = trainer(2, [], tmp_path)
    data = online_data(reward=RewardModelReward(rm_dir, device="cpu"))
    fitted.fit(GRPOModule(model=lively_model, optimizer=adamw()), datamodule=data)
    metrics = fitted.callback_metrics
    assert metrics["rollout/rounds"] == 2 and metrics["reward/std"] > 0
    assert "accuracy" not in metrics  # a learned reward is not verifiable
    state = data.state_dict()
    assert {k: state[k] for k in ("position", "calls", "rounds", "starved", "queue")} == {
        "position": 4,
        "calls": 2,
        "rounds": 2,
        "starved": 0,
        "queue": [],
    }  # 2 rounds of 1 step: nothing left


def test_accuracy_counts_exact_match_even_inside_a_weighted_sum(monkeypatch):
    from hl_lightning.models.generation import Generations
    from hl_lightning.online.rollout import SamplingConfig, rollout_metrics, sample_and_score
    from hl_lightning.rewards import ExactMatchReward, FormatReward, WeightedSum

    texts = ["It is 3.", "4", "3", "no idea"]  # prompt 0 (answer 3): right, wrong; prompt 1 (answer 4): wrong, wrong
    fake = Generations(
        texts=texts,
        completion_ids=[[1, 2], [1], [1], [1, 2, 3]],
        truncated=[False, False, True, True],
        num_tokens=6,
        seconds=2.0,
    )
    monkeypatch.setattr("hl_lightning.online.rollout.generate", lambda *args, **kwargs: fake)
    reward = WeightedSum([ExactMatchReward(correct=2.0), FormatReward()], weights=[1.0, 0.5])
    rows = [{"prompt": "What is 1 + 2?", "answer": 3}, {"prompt": "What is 2 + 2?", "answer": 4}]
    rollout = sample_and_score(None, None, rows, [[], []], reward, SamplingConfig(num_generations=2), seed=0)
    assert rollout.rewards == [[2.5, 0.5], [0.5, 0.0]] and rollout.correct == [True, False, False, False]
    metrics = rollout_metrics([rollout])
    assert metrics["accuracy"] == 0.25 and metrics["reward/mean"] == pytest.approx(0.875)
    assert metrics["completions/mean_length"] == 1.75 and metrics["completions/clipped_ratio"] == 0.5
    assert metrics["rollout/tokens_per_s"] == 3.5
