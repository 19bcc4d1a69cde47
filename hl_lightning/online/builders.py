"""Pure builders: from one prompt's rewards to the items an objective trains on (no model, no Lightning).

Every function here looks at the rewards of the ``G`` completions of *one* prompt and returns which
completions to use and how:

- DPO (:func:`best_worst_pairs`): the best and the worst completion, or None (the prompt is dropped) when
  their reward gap is at most ``threshold`` (HALOs' ``--feedback_mode max --threshold 0.01``).
- KTO (:func:`unpaired_labels`): the best as desirable and the worst as undesirable (``"best_worst"``,
  dropped like a DPO pair), or every completion, desirable when its reward is above a threshold
  (``"threshold"``, never dropped).
- GRPO (:func:`group_advantages_of`): all completions with group-relative advantages
  ``(r - mean) / (std + eps)``; a group of equal rewards gets advantages of exactly 0 (never NaN).

Ties are broken deterministically: the first index wins (``rewards.index(max(rewards))``).
"""

from __future__ import annotations

from typing import Literal

import torch

from hl_lightning.objectives import group_advantages

KTOMode = Literal["best_worst", "threshold"]
Objective = Literal["dpo", "kto", "grpo"]


def _check(rewards: list[float]) -> None:
    if len(rewards) < 2:
        raise ValueError(f"need the rewards of at least 2 completions of a prompt, got {len(rewards)}.")


def best_worst_pairs(rewards: list[float], threshold: float = 0.01) -> tuple[int, int] | None:
    """The (best, worst) completion indices of one prompt, or None when the prompt is dropped.

    Args:
        rewards: one reward per completion of the prompt (at least 2).
        threshold: the prompt is dropped when ``max(rewards) - min(rewards) <= threshold``; must be >= 0,
            so a kept pair always has ``best != worst``.

    Returns:
        ``(i_best, j_worst)``, each the first index holding the max / min reward, or None.
    """
    _check(rewards)
    if threshold < 0:
        raise ValueError(f"threshold={threshold} must be >= 0.")
    best, worst = max(rewards), min(rewards)
    if best - worst <= threshold:
        return None
    return rewards.index(best), rewards.index(worst)


def unpaired_labels(
    rewards: list[float], mode: KTOMode = "best_worst", threshold: float = 0.01
) -> list[tuple[int, bool]]:
    """KTO items of one prompt: ``[(completion index, desirable), ...]``; empty when the prompt is dropped.

    Args:
        rewards: one reward per completion of the prompt (at least 2).
        mode: ``"best_worst"``: ``[(i_best, True), (j_worst, False)]`` from :func:`best_worst_pairs`
            (``threshold`` is the minimal reward gap); ``"threshold"``: every completion, desirable when its
            reward is strictly greater than ``threshold`` (never dropped).
        threshold: the reward gap (``"best_worst"``) or the reward level (``"threshold"``).
    """
    if mode == "best_worst":
        pair = best_worst_pairs(rewards, threshold)
        return [] if pair is None else [(pair[0], True), (pair[1], False)]
    if mode == "threshold":
        _check(rewards)
        return [(i, r > threshold) for i, r in enumerate(rewards)]
    raise ValueError(f"mode={mode!r}: choose 'best_worst' or 'threshold'.")


def group_advantages_of(rewards: list[float], eps: float = 0.01) -> list[float]:
    """Group-relative advantages of all completions of one prompt (``hl_lightning.objectives.group_advantages``).

    Args:
        rewards: one reward per completion of the prompt (at least 2).
        eps: added to the population std of the rewards; must be > 0.
    """
    _check(rewards)
    values = torch.tensor(rewards, dtype=torch.float64)
    return group_advantages(values, torch.zeros(len(rewards), dtype=torch.long), eps).tolist()


def select(
    objective: Objective,
    rewards: list[float],
    *,
    pair_threshold: float = 0.01,
    kto_mode: KTOMode = "best_worst",
    kto_threshold: float = 0.5,
    advantage_eps: float = 0.01,
) -> tuple | list | None:
    """What one prompt contributes to ``objective``, or None when it is dropped.

    Returns:
        DPO: ``(i_best, j_worst)``; KTO: ``[(index, desirable), ...]``; GRPO: one advantage per completion.
        None for a dropped prompt (DPO, and KTO in ``"best_worst"`` mode, when the reward gap is small).
    """
    if objective == "dpo":
        return best_worst_pairs(rewards, pair_threshold)
    if objective == "kto":
        threshold = pair_threshold if kto_mode == "best_worst" else kto_threshold
        return unpaired_labels(rewards, kto_mode, threshold) or None
    if objective == "grpo":
        return group_advantages_of(rewards, advantage_eps)
    raise ValueError(f"objective={objective!r}: choose 'dpo', 'kto' or 'grpo'.")
