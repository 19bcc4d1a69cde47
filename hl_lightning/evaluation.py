"""Exact-match accuracy of greedy completions on verifiable prompts (e.g. the arithmetic task)."""

from __future__ import annotations

from typing import NamedTuple

import torch

from hl_lightning.data.arithmetic import parse_final_number
from hl_lightning.models.generation import generate


class Example(NamedTuple):
    """One scored row: prompt text (the last message of a message list), completion, answer, verdict."""

    prompt: str
    completion: str
    answer: int
    correct: bool


class EvalResult(NamedTuple):
    """Result of :func:`exact_match_accuracy`.

    Attributes:
        accuracy: fraction of rows whose completion's last integer equals the answer.
        n: number of rows scored.
        examples: the first few scored rows, for printing.
        texts: every completion, in the order of the rows.
        correct: per row, whether its completion's last integer is the answer.
    """

    accuracy: float
    n: int
    examples: list[Example]
    texts: list[str]
    correct: list[bool]

    def __str__(self) -> str:
        lines = [f"exact-match accuracy {self.accuracy:.3f} on {self.n} prompts"]
        lines += [
            f"  [{'ok' if e.correct else 'x '}] {e.prompt!r} -> {e.completion!r} (answer {e.answer})"
            for e in self.examples
        ]
        return "\n".join(lines)


def exact_match_accuracy(
    model: torch.nn.Module,
    tokenizer,
    rows: list[dict],
    *,
    max_new_tokens: int = 32,
    batch_size: int = 16,
    progress: bool = True,
    num_examples: int = 3,
) -> EvalResult:
    """Greedy-decode every prompt and score the last integer of each completion against its answer.

    Args:
        model: a Hugging Face causal LM.
        tokenizer: its tokenizer (with a chat template).
        rows: dicts with ``prompt`` (a string, taken as one user turn, or a message list) and an integer
            ``answer``.
        max_new_tokens: the most tokens generated per completion.
        batch_size: prompts per generation batch.
        progress: show a progress bar over the batches.
        num_examples: how many scored rows to keep in ``EvalResult.examples``.

    Returns:
        EvalResult with the accuracy, the number of rows and the first ``num_examples`` scored rows.
    """
    if not rows:
        raise ValueError("exact_match_accuracy needs at least one row.")
    prompts = [row["prompt"] for row in rows]
    out = generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size, progress=progress)
    answers = [int(row["answer"]) for row in rows]
    correct = [parse_final_number(text) == answer for text, answer in zip(out.texts, answers, strict=True)]
    examples = [
        Example(p if isinstance(p, str) else p[-1]["content"], text, answer, ok)
        for p, text, answer, ok in zip(prompts[:num_examples], out.texts, answers, correct, strict=False)
    ]
    return EvalResult(sum(correct) / len(rows), len(rows), examples, list(out.texts), correct)


def reward_scores(
    model: torch.nn.Module,
    tokenizer,
    rows: list[dict],
    reward,
    *,
    max_new_tokens: int = 32,
    batch_size: int = 16,
    progress: bool = True,
) -> list[float]:
    """``reward`` of the greedy completion of each row (``prompt`` plus any fields the reward reads), in order.

    For data without verifiable answers; the reward is any ``hl_lightning.rewards.Reward`` (validated: a
    non-finite score raises ``RewardError`` naming the reward).
    """
    options = dict(max_new_tokens=max_new_tokens, batch_size=batch_size, progress=progress)
    return reward_answers(model, tokenizer, rows, reward, **options)[1]


def reward_answers(
    model: torch.nn.Module, tokenizer, rows: list[dict], reward, **options
) -> tuple[list[str], list[float]]:
    """The greedy completion of each row and its ``reward`` (options as :func:`reward_scores`)."""
    if not rows:
        raise ValueError("reward_scores needs at least one row.")
    from hl_lightning.online.rollout import score

    out = generate(model, tokenizer, [row["prompt"] for row in rows], **options)
    return list(out.texts), score(reward, rows, out.texts, 1)


def mean_reward(model: torch.nn.Module, tokenizer, rows: list[dict], reward, **options) -> float:
    """Mean of :func:`reward_scores` (same options)."""
    values = reward_scores(model, tokenizer, rows, reward, **options)
    return sum(values) / len(values)


def win_rate(scores: list[float], baseline: list[float]) -> float:
    """Share of rows whose score beats the baseline's on the same prompt, a tie counting one half."""
    if len(scores) != len(baseline) or not scores:
        raise ValueError(
            f"win_rate needs two equally long, non-empty score lists; got {len(scores)} and {len(baseline)}."
        )
    return sum(1.0 if s > b else 0.5 if s == b else 0.0 for s, b in zip(scores, baseline, strict=True)) / len(scores)
