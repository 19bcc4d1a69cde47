"""Rule-based rewards: verifiable answers and a format regex."""

from __future__ import annotations

import re

from hl_lightning.data.arithmetic import parse_final_number
from hl_lightning.rewards.base import Reward, RewardError


class ExactMatchReward(Reward):
    """Verifiable answers: the last integer in the completion against the row's integer ``answer``.

    Needs the row field ``answer`` (``answer=[...]``, one integer per completion). A completion with no
    number, or whose last number is not an integer, counts as wrong.

    Args:
        correct: reward when the last integer equals the answer.
        wrong: reward otherwise.
    """

    name = "exact_match"

    def __init__(self, correct: float = 1.0, wrong: float = 0.0) -> None:
        self.correct, self.wrong = correct, wrong

    def __call__(self, prompts: list[str], completions: list[str], **row_fields) -> list[float]:
        if "answer" not in row_fields:
            raise RewardError(f"Reward {self.name!r} needs the row field 'answer'; got {sorted(row_fields)}.")
        return [
            self.correct if parse_final_number(text) == int(answer) else self.wrong
            for text, answer in zip(completions, row_fields["answer"], strict=True)
        ]


class FormatReward(Reward):
    """Whether the stripped completion matches a regular expression.

    Args:
        pattern: a Python regular expression. The default accepts a completion that ends in an integer,
            optionally followed by a full stop (``"The answer is -3."``).
        fullmatch: if True the whole stripped completion must match (``re.fullmatch``); if False the
            pattern may match anywhere (``re.search``; anchor it with ``^``/``$`` as needed).
        matched: reward when the completion matches.
        unmatched: reward otherwise.
    """

    name = "format"

    def __init__(
        self,
        pattern: str = r"-?\d+\.?$",
        fullmatch: bool = False,
        matched: float = 1.0,
        unmatched: float = 0.0,
    ) -> None:
        try:
            regex = re.compile(pattern)
        except re.error as err:
            raise ValueError(f"FormatReward: invalid regular expression {pattern!r}: {err}") from err
        self.match = regex.fullmatch if fullmatch else regex.search
        self.matched, self.unmatched = matched, unmatched

    def __call__(self, prompts: list[str], completions: list[str], **row_fields) -> list[float]:
        return [self.matched if self.match(text.strip()) else self.unmatched for text in completions]
