"""Held-out scoring follows the data: exact match with an answer column, a reward without one, or nothing;
asking for exact match on data without answers fails at setup."""

import json
import logging

import pytest

from hl_lightning.callbacks import HeldOutEval
from hl_lightning.data import PreferenceDataModule
from hl_lightning.evaluation import exact_match_accuracy, mean_reward, reward_scores, win_rate
from hl_lightning.rewards import FormatReward
from tests.helpers import tiny_dpo, trainer

ROWS = [{"prompt": f"Say something about {i}.", "chosen": f"Nice {i}.", "rejected": f"Bad {i}."} for i in range(8)]


def user_data(write_jsonl, rows=ROWS):
    path = write_jsonl("mine.jsonl", rows)
    return PreferenceDataModule(
        path=str(path), val_path=str(path), tokenizer="tiny-random", batch_size=2, max_length=64, max_prompt_length=48
    ), path


def test_data_without_answers_trains_and_scores_nothing(write_jsonl, tmp_path, caplog):
    data, path = user_data(write_jsonl)
    heldout = HeldOutEval(max_new_tokens=3)
    with caplog.at_level(logging.INFO):
        trainer(1, [heldout], tmp_path, limit_val_batches=0).fit(tiny_dpo(), datamodule=data)
    assert heldout.chosen is None and heldout.history == []
    assert f"{path} has no integer 'answer' column and no reward was given" in caplog.text


def test_exact_match_on_data_without_answers_fails_at_setup(write_jsonl, tmp_path):
    data, path = user_data(write_jsonl)
    module = tiny_dpo()
    with pytest.raises(ValueError, match=rf"metric='exact_match'\) needs an integer 'answer' column.*{path}"):
        trainer(1, [HeldOutEval(metric="exact_match")], tmp_path).fit(module, datamodule=data)


def test_a_reward_scores_data_without_answers(write_jsonl, tmp_path):
    data, _ = user_data(write_jsonl)
    reward = FormatReward(pattern="^[A-Z]")
    heldout = HeldOutEval(reward=reward, max_new_tokens=3, limit=4)
    module = tiny_dpo(lr=1e-6)
    trainer(1, [heldout], tmp_path, limit_val_batches=0).fit(module, datamodule=data)
    assert heldout.chosen == "reward" and [step for step, _ in heldout.history] == [0, 1]
    rows = data.held_out_rows()[:4]
    expected = mean_reward(module.policy, data.tokenizer, rows, reward, max_new_tokens=3, progress=False)
    assert heldout.after == pytest.approx(expected)


def test_exact_match_with_answers_scores_every_n_steps(tmp_path):
    data = PreferenceDataModule(tokenizer="tiny-random", batch_size=2, max_length=64, max_prompt_length=48)
    heldout = HeldOutEval(max_new_tokens=3, limit=3, every_n_steps=2)
    module = tiny_dpo()
    trainer(4, [heldout], tmp_path, limit_val_batches=0).fit(module, datamodule=data)
    assert heldout.chosen == "exact_match" and [step for step, _ in heldout.history] == [0, 2, 4]
    expected = exact_match_accuracy(
        module.policy, data.tokenizer, data.held_out_rows()[:3], max_new_tokens=3, progress=False
    )
    assert heldout.after == expected.accuracy
    record = json.loads((tmp_path / "heldout.json").read_text())  # the final answers, for paired comparisons
    assert [a["completion"] for a in record["final_answers"]] == expected.texts
    assert [a["score"] for a in record["final_answers"]] == [float(ok) for ok in expected.correct]
    assert [a["prompt"] for a in record["final_answers"]] == [r["prompt"] for r in data.held_out_rows()[:3]]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(metric="accuracy"), r"metric='accuracy'\): choose 'auto', 'exact_match', 'reward' or 'win_rate'"),
        (dict(metric="reward"), r"metric='reward'\) needs a reward"),
        (dict(every_n_steps=0), r"every_n_steps=0\): must be >= 1"),
    ],
)
def test_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        HeldOutEval(**kwargs)


def test_win_rate_against_the_initial_policy_by_hand():
    """Ties count one half: 2 wins, 1 tie and 1 loss of 4 is (2 + 0.5) / 4."""
    assert win_rate([0.9, 0.5, 0.1, 0.3], [0.1, 0.2, 0.1, 0.4]) == 0.625
    assert win_rate([0.2, 0.7], [0.2, 0.7]) == 0.5  # the initial policy against itself
    with pytest.raises(ValueError, match="two equally long, non-empty score lists; got 2 and 1"):
        win_rate([0.1, 0.2], [0.3])


def test_win_rate_compares_with_the_initial_answers_and_survives_a_checkpoint(write_jsonl, tmp_path):
    """Step 0 is 0.5 (the initial policy against itself); the final value is the win-rate of the trained
    policy's judge scores against the scores of the initial answers, recomputed here by hand."""
    data, _ = user_data(write_jsonl)
    reward = FormatReward(pattern="^[A-Z]")
    heldout = HeldOutEval(metric="win_rate", reward=reward, max_new_tokens=3, limit=4)
    module = tiny_dpo(lr=1e-2)
    fit = trainer(2, [heldout], tmp_path, limit_val_batches=0)
    fit.fit(module, datamodule=data)
    assert heldout.chosen == "win_rate" and heldout.history[0] == (0, 0.5)
    rows = data.held_out_rows()[:4]
    now = reward_scores(module.policy, data.tokenizer, rows, reward, max_new_tokens=3, progress=False)
    assert heldout.after == win_rate(now, heldout.initial_scores) and len(heldout.initial_scores) == 4
    record = json.loads((tmp_path / "heldout.json").read_text())
    assert [a["score"] for a in record["final_answers"]] == now
    assert record["judge_history"][-1] == [2, pytest.approx(sum(now) / 4)]  # the mean judge score by step
    assert record["judge_history"][0] == [0, pytest.approx(sum(heldout.initial_scores) / 4)]
    assert record["initial_scores"] == heldout.initial_scores  # per-prompt wins can be recomputed from the file
    assert record["eval_s"] == heldout.eval_s > 0  # the scoring time: a sweep subtracts it from the run's
    restored = HeldOutEval(metric="win_rate", reward=reward)
    restored.load_state_dict(heldout.state_dict())
    assert restored.initial_scores == heldout.initial_scores and restored.history == heldout.history
    assert restored.judge_history == heldout.judge_history and restored.eval_s == heldout.eval_s
    with pytest.raises(ValueError, match=r"metric='win_rate'\) needs a reward"):
        HeldOutEval(metric="win_rate")
