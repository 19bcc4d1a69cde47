"""Rule-based rewards, output validation and the weighted sum."""

import math
import sys
import textwrap

import numpy as np
import pytest
import torch

from hl_lightning.rewards import (
    ExactMatchReward,
    FormatReward,
    FunctionReward,
    Reward,
    RewardError,
    WeightedSum,
    validate_rewards,
)

COMPLETIONS = ["The answer is 19.", "12 - 15 = -3.", "I do not know.", "7", "It is 3.5"]
ANSWERS = [19, -3, 5, 8, 3]
PROMPTS = ["q"] * len(COMPLETIONS)


class Fixed(Reward):
    """Returns whatever it was built with."""

    name = "fixed"

    def __init__(self, values):
        self.values = values

    def __call__(self, prompts, completions, **row_fields):
        return self.values


def test_exact_match():
    assert ExactMatchReward()(PROMPTS, COMPLETIONS, answer=ANSWERS) == [1.0, 1.0, 0.0, 0.0, 0.0]
    reward = ExactMatchReward(correct=2.0, wrong=-1.0)
    assert reward.score(PROMPTS, COMPLETIONS, answer=[str(a) for a in ANSWERS]) == [
        2.0,
        2.0,
        -1.0,
        -1.0,
        -1.0,
    ]
    with pytest.raises(RewardError, match="'answer'"):
        reward(PROMPTS, COMPLETIONS)


def test_format_reward():
    texts = ["42", "The answer is -3.", "  7 \n", "abc", "3 apples", "42."]
    assert FormatReward()(["q"] * 6, texts) == [1.0, 1.0, 1.0, 0.0, 0.0, 1.0]
    strict = FormatReward(fullmatch=True, matched=0.5, unmatched=-0.5)
    assert strict(["q"] * 6, texts) == [0.5, -0.5, 0.5, -0.5, -0.5, 0.5]
    with pytest.raises(ValueError, match="regular expression"):
        FormatReward("(")


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "my_rewards.py").write_text(
        textwrap.dedent("""
        def length(prompts, completions):
            return [float(len(c)) for c in completions]

        def matches(prompts, completions, answer):
            return [float(str(a) in c) for c, a in zip(completions, answer)]

        class Holder:
            @staticmethod
            def anything(prompts, completions, **fields):
                return [float(len(fields))] * len(completions)

        NOT_A_FUNCTION = 3
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_rewards", raising=False)
    return "my_rewards"


def test_function_reward(user_module):
    assert FunctionReward(f"{user_module}:length")(["p", "p"], ["ab", "abcd"], answer=[1, 2]) == [2.0, 4.0]
    assert FunctionReward(f"{user_module}.length")(["p"], ["abc"]) == [3.0]
    assert FunctionReward(f"{user_module}:matches")(["p", "p"], ["is 4", "is 5"], answer=[4, 4]) == [1.0, 0.0]
    reward = FunctionReward(f"{user_module}:Holder.anything")
    assert reward.score(["p"], ["x"], answer=[1], label=[True]) == [2.0]
    assert reward.name == f"{user_module}:Holder.anything"


@pytest.mark.parametrize("path", ["my_rewards:missing", "no_such_module_xyz:f", "no_such_module_xyz.f", "nodots"])
def test_function_reward_import_errors(user_module, path):
    with pytest.raises(ImportError, match=path):
        FunctionReward(path)


def test_function_reward_rejects_non_callables(user_module):
    with pytest.raises(TypeError, match="NOT_A_FUNCTION"):
        FunctionReward(f"{user_module}:NOT_A_FUNCTION")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([1.0], "returned 1 values for 2 completions"),
        ([1.0, math.nan], "nan at index 1"),
        ([1.0, math.inf], "inf at index 1"),
        (["1.0", 2.0], "'1.0' at index 0"),
        ([1.0, None], "None at index 1"),
        (3.0, "returned a float"),
        ("ab", "returned a str"),
        (torch.zeros(2, 1), r"shape \(2, 1\)"),
    ],
)
def test_validation_errors_name_the_reward(values, message):
    with pytest.raises(RewardError, match=message) as err:
        Fixed(values).score(["p", "p"], ["a", "b"])
    assert "'fixed'" in str(err.value)


@pytest.mark.parametrize("values", [[1, 2.5], (True, 0), torch.tensor([1.0, 2.5]), np.array([1, 2.5], np.float32)])
def test_validation_accepts_real_sequences(values):
    out = validate_rewards("ok", values, 2)
    assert out == [float(v) for v in values] and all(type(v) is float for v in out)


def test_weighted_sum():
    parts = [ExactMatchReward(), FormatReward()]
    fields = dict(answer=ANSWERS)
    assert WeightedSum(parts)(PROMPTS, COMPLETIONS, **fields) == [2.0, 2.0, 0.0, 1.0, 1.0]
    assert WeightedSum(parts, [2.0, -0.5]).score(PROMPTS, COMPLETIONS, **fields) == [
        1.5,
        1.5,
        0.0,
        -0.5,
        -0.5,
    ]
    with pytest.raises(RewardError, match="'fixed'"):
        WeightedSum([parts[0], Fixed([1.0])])(PROMPTS, COMPLETIONS, **fields)
    with pytest.raises(ValueError, match="one weight per reward"):
        WeightedSum(parts, [1.0])


def test_rewards_build_from_yaml_by_class_path():
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_argument("--reward", type=Reward)
    config = parser.parse_string("""
        reward:
          class_path: hl_lightning.rewards.WeightedSum
          init_args:
            rewards:
              - class_path: hl_lightning.rewards.ExactMatchReward
                init_args: {correct: 2.0}
              - class_path: hl_lightning.rewards.FormatReward
            weights: [1.0, 0.5]
    """)
    reward = parser.instantiate_classes(config).reward
    assert reward(["q", "q"], ["is 5", "five"], answer=[5, 5]) == [2.5, 0.0]
