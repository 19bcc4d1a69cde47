"""Rule-based rewards: verifiable answers, a format regex, and any user function by import path."""

from __future__ import annotations

import importlib
import inspect
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


def import_object(path: str):
    """Import ``"pkg.module:name"`` (``name`` may be dotted) or ``"pkg.module.name"``.

    Raises:
        ImportError: the module or the attribute cannot be found; the message names ``path``.
    """
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ImportError(f"Cannot import {path!r}: use 'pkg.module:function' or 'pkg.module.function'.")
    try:
        obj = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as err:
        raise ImportError(f"Cannot import {path!r}: {type(err).__name__}: {err}") from err
    return obj


class FunctionReward(Reward):
    """Any user function ``f(prompts, completions, **fields) -> list[float]``, given by import path.

    Row fields (``answer`` ...) are passed as keyword lists when the function accepts them: all of them if
    it takes ``**kwargs``, otherwise only those it names as parameters, so ``f(prompts, completions)``
    works as is.

    Args:
        path: ``"pkg.module:function"`` or ``"pkg.module.function"``; the module must be importable
            (installed, or on ``sys.path``/``PYTHONPATH``).
    """

    def __init__(self, path: str) -> None:
        self.fn = import_object(path)
        if not callable(self.fn):
            raise TypeError(f"FunctionReward: {path!r} is a {type(self.fn).__name__}, not a function.")
        self.name = path
        params = inspect.signature(self.fn).parameters.values()
        self._all_fields = any(p.kind is p.VAR_KEYWORD for p in params)
        self._fields = {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}

    def __call__(self, prompts: list[str], completions: list[str], **row_fields) -> list[float]:
        fields = {k: v for k, v in row_fields.items() if self._all_fields or k in self._fields}
        return self.fn(prompts, completions, **fields)
