"""Rewards users write: whatever ``reward=`` receives becomes one :class:`Reward`, tried once before any rollout.

:func:`as_reward` accepts:

- a :class:`Reward` (an instance of a subclass): as it is;
- a ``Reward`` subclass itself: instantiated without arguments;
- a plain function, or any callable, ``f(prompts, completions, **columns) -> list[float]``: wrapped in
  :class:`CallableReward`;
- a ``{"class_path": ..., "init_args": {...}}`` dict, or an import path ``"my_rewards:length"`` /
  ``"my_rewards.LengthReward"``: imported, then as above.

:func:`user_reward` (what ``OnlineDataModule`` calls) also makes a trial call: the reward scores two sample
completions of the first prompt of the prompt file, with that row's other columns, so a wrong signature, a
missing column or a wrong return value fails at construction, naming the reward, not at the first rollout.
A user module that cannot be imported is one line naming the module, the working directory and the fix.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hl_lightning.data.prompts import data_paths
from hl_lightning.data.rows import BadRow, DataError, read_rows
from hl_lightning.rewards.base import CallableReward, Reward, RewardError

RewardLike = Reward | Callable[..., Any] | dict | str  # what OnlineDataModule(reward=...) accepts
TRIAL_COMPLETIONS = ("", "The answer is 4.")  # an empty completion happens in rollouts too: a reward must score it


class RewardImportError(ImportError, ValueError):
    """A reward's module or object cannot be imported (a ``ValueError`` too, so the CLI prints it as one line)."""


def import_hint(module: str) -> str:
    """Why ``module`` (a user's module, named in a config) could not be imported and how to make it importable,
    in one line: the working directory, whether the module's file is there, and the fixes."""
    top, here = module.split(".")[0], Path.cwd()
    beside = next((f for f in (f"{top}.py", f"{top}/__init__.py") if (here / f).exists()), None)
    where = (
        f"{beside} is in the working directory {here}, but this process does not import from it (the "
        "hl-lightning console script does not)"
        if beside
        else f"no module {module!r} on the Python path of this process (working directory {here})"
    )
    return (
        f"{where}; run from the directory that holds {top}.py with `PYTHONPATH=. hl-lightning ...` or "
        "`python -m hl_lightning ...`, or install your project (pip install -e .)"
    )


def import_object(path: str) -> Any:
    """Import ``"pkg.module:name"`` (``name`` may be dotted) or ``"pkg.module.name"``.

    Raises:
        RewardImportError: the module or the attribute cannot be found; one line naming ``path``, and for a
            missing module the working directory and how to make it importable.
    """
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise RewardImportError(f"Cannot import {path!r}: use 'pkg.module:function' or 'pkg.module.Class'.")
    try:
        obj = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name and (module_name == err.name or module_name.startswith(err.name + ".")):  # not one it imports
            raise RewardImportError(f"Cannot import the reward {path!r}: {import_hint(err.name)}") from None
        raise RewardImportError(f"Cannot import {path!r}: importing {module_name!r} failed: {err}") from err
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise RewardImportError(f"Cannot import {path!r}: {getattr(obj, '__file__', obj)} has no {part!r}.")
        obj = getattr(obj, part)
    return obj


class FunctionReward(CallableReward):
    """A user function given by import path, ``f(prompts, completions, **columns) -> list[float]`` (see
    :class:`CallableReward` for which columns it gets).

    Args:
        path: ``"pkg.module:function"`` or ``"pkg.module.function"``; the module must be importable
            (installed, or in the working directory with ``python -m hl_lightning``, or on ``PYTHONPATH``).
    """

    def __init__(self, path: str) -> None:
        fn = import_object(path)
        if not callable(fn):
            raise TypeError(f"FunctionReward: {path!r} is a {type(fn).__name__}, not a function.")
        super().__init__(fn, name=path)


def as_reward(reward: RewardLike) -> Reward:
    """``reward`` as a :class:`Reward` (see the module docstring for what is accepted)."""
    if isinstance(reward, dict) and "class_path" in reward:
        path, init_args = reward["class_path"], reward.get("init_args", {})
        try:
            reward = import_object(path)(**init_args)
        except TypeError as err:
            raise TypeError(f"Reward {path!r}: bad init_args {init_args}: {err}") from err
    elif isinstance(reward, str):
        reward = import_object(reward)
    if isinstance(reward, type) and issubclass(reward, Reward):
        reward = reward()
    if isinstance(reward, Reward):
        return reward
    if not callable(reward):
        raise TypeError(
            f"reward={reward!r} is not a reward: pass a Reward, a function f(prompts, completions, **columns) -> "
            "list[float], a {class_path, init_args} dict or an import path 'my_rewards:length'."
        )
    return CallableReward(reward)


def _first_row(prompts: str, columns: dict[str, str | None] | None) -> tuple[str, dict] | None:
    """The prompt file and its first row with a prompt, or None when it cannot be read (setup then says why)."""
    path = data_paths(prompts, None, "prompts")[0]
    try:
        rows = read_rows(path, columns)
    except DataError:
        return None
    row = next((r for r in rows if not isinstance(r, BadRow) and r.get("prompt") is not None), None)
    return None if row is None else (str(path), row)


def check_reward(reward: Reward, prompts: str = "arithmetic", columns: dict[str, str | None] | None = None) -> Reward:
    """Call ``reward`` once, as a rollout would, on the first prompt of the prompt file and two sample completions
    (:data:`TRIAL_COMPLETIONS`), with the row's other columns as keyword lists; return it.

    Raises:
        RewardError: the call failed or returned something other than two finite numbers; one line naming
            the reward, the file and the error.
    """
    first = _first_row(prompts, columns)
    if first is None:
        return reward
    source, row = first
    n = len(TRIAL_COMPLETIONS)
    fields = {key: [value] * n for key, value in row.items() if key != "prompt"}
    try:
        reward.score([row["prompt"]] * n, list(TRIAL_COMPLETIONS), **fields)
    except Exception as err:  # a user reward may raise anything: say which reward and how it is called
        name = getattr(reward, "name", type(reward).__name__)
        raise RewardError(
            f"Reward {name!r} ({type(reward).__name__}) failed a trial call on the first prompt of {source} "
            f"with the completions {list(TRIAL_COMPLETIONS)} and the columns {sorted(fields)}: "
            f"{type(err).__name__}: {err} (a reward is called as reward(prompts, completions, **columns), one list "
            "entry per completion, and returns one finite number per completion)"
        ) from err
    return reward


def user_reward(
    reward: RewardLike, prompts: str = "arithmetic", columns: dict[str, str | None] | None = None
) -> Reward:
    """:func:`as_reward`, then :func:`check_reward` on the prompt file (what ``OnlineDataModule`` does with its
    ``reward``)."""
    return check_reward(as_reward(reward), prompts, columns)
