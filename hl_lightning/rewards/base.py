"""The reward interface, the one check of a reward's output, a plain function as a reward, and a weighted sum."""

from __future__ import annotations

import inspect
import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import torch


class RewardError(ValueError):
    """A reward returned something other than one finite real number per completion."""


def validate_rewards(name: str, values, n: int) -> list[float]:
    """Check a reward's output and return it as a list of floats.

    Args:
        name: the reward's name, quoted in the error message.
        values (Sequence[float]): what the reward returned: a list, tuple, 1-D tensor or 1-D array of real numbers.
        n: the number of completions scored (the length ``values`` must have).

    Returns:
        ``values`` as a list of ``n`` Python floats.

    Raises:
        RewardError: ``values`` is not a sequence, has the wrong length, or holds a value that is not a
            finite real number; the message names the reward and the first bad index and value.
    """
    if isinstance(values, torch.Tensor) or hasattr(values, "ndim"):  # tensor or numpy array
        if values.ndim != 1:
            shape = tuple(values.shape)
            raise RewardError(f"Reward {name!r} returned an array of shape {shape}; need ({n},).")
        values = values.tolist()
    if not isinstance(values, Sequence) or isinstance(values, (str, bytes)):
        raise RewardError(f"Reward {name!r} returned a {type(values).__name__}; need a list of {n} floats.")
    if len(values) != n:
        raise RewardError(f"Reward {name!r} returned {len(values)} values for {n} completions.")
    for i, value in enumerate(values):
        if not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise RewardError(
                f"Reward {name!r} returned {value!r} at index {i}; every value must be a finite real number."
            )
    return [float(value) for value in values]


class Reward(ABC):
    """A reward: scores completions of prompts, one float per completion.

    Subclasses implement ``__call__`` and set ``name``. Extra per-row fields of the data (for example
    ``answer``) arrive as keyword lists aligned with ``completions``; a reward ignores those it does not use.
    """

    name: str = "reward"

    @abstractmethod
    def __call__(self, prompts: list[str], completions: list[str], **row_fields) -> list[float]:
        """Score ``completions[i]`` as a reply to ``prompts[i]``; return one float per completion."""

    def score(self, prompts: list[str], completions: list[str], **row_fields) -> list[float]:
        """Call the reward and validate its output with :func:`validate_rewards`."""
        return validate_rewards(self.name, self(prompts, completions, **row_fields), len(completions))


class CallableReward(Reward):
    """A plain function (or any callable) as a :class:`Reward`: ``fn(prompts, completions, **columns) -> list[float]``.

    The function gets the prompts and the completions as two lists of equal length, one entry per completion.
    The prompt file's other columns (``answer`` ...) are passed as keyword lists aligned with ``completions``
    when the function accepts them: all of them if it takes ``**kwargs``, otherwise those it names as
    parameters, so ``f(prompts, completions)`` works as is.

    Args:
        fn: the function.
        name: the reward's name in messages; default: the function's module and name.

    Raises:
        TypeError: ``fn`` is not callable, or cannot be called with two positional arguments.
    """

    def __init__(self, fn: Callable[..., Any], name: str | None = None) -> None:
        if not callable(fn):
            raise TypeError(f"A reward must be callable; got a {type(fn).__name__} ({fn!r}).")
        self.fn = fn
        self.name = name or f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__name__)}"
        try:
            signature = inspect.signature(fn)
        except (TypeError, ValueError):  # some builtins have none: call them as they are
            self._all_fields, self._fields = True, set()
            return
        try:
            signature.bind_partial([], [])
        except TypeError:
            raise TypeError(
                f"Reward {self.name!r} has the signature {signature}, but a reward is called as "
                "f(prompts, completions, **columns): two lists, then the prompt file's other columns by name."
            ) from None
        params = signature.parameters.values()
        self._all_fields = any(p.kind is p.VAR_KEYWORD for p in params)
        self._fields = {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}

    def __call__(self, prompts: list[str], completions: list[str], **row_fields) -> list[float]:
        fields = {k: v for k, v in row_fields.items() if self._all_fields or k in self._fields}
        return self.fn(prompts, completions, **fields)


class WeightedSum(Reward):
    """A weighted sum of rewards; each component's output is validated before it is added.

    Args:
        rewards: the component rewards (a plain function is wrapped in :class:`CallableReward`).
        weights: one weight per reward; default 1.0 for every reward.
    """

    name = "weighted_sum"

    def __init__(self, rewards: list[Reward], weights: list[float] | None = None) -> None:
        rewards = [r if isinstance(r, Reward) else CallableReward(r) for r in rewards]
        weights = [1.0] * len(rewards) if weights is None else list(weights)
        if not rewards or len(weights) != len(rewards):
            raise ValueError(
                f"WeightedSum needs >= 1 reward and one weight per reward; got {len(rewards)} rewards and "
                f"{len(weights)} weights."
            )
        self.rewards, self.weights = list(rewards), weights

    def __call__(self, prompts: list[str], completions: list[str], **row_fields) -> list[float]:
        total = [0.0] * len(completions)
        for reward, weight in zip(self.rewards, self.weights, strict=True):
            values = reward.score(prompts, completions, **row_fields)
            total = [t + weight * v for t, v in zip(total, values, strict=True)]
        return total
