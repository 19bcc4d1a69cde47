"""One rollout: the current policy samples ``G`` completions per prompt (through a rollout engine) and a reward
scores them."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import torch

from hl_lightning.models.engines import RolloutEngine, SamplingConfig
from hl_lightning.models.generation import generate
from hl_lightning.rewards import ExactMatchReward, Reward, RewardError, WeightedSum


@dataclass
class Rollout:
    """Scored completions of a list of prompt rows; per-prompt lists, completions in sampling order.

    Attributes:
        rows: the prompt rows (``prompt`` plus extra fields such as ``answer``).
        texts: ``texts[p][g]``: completion ``g`` of prompt ``p``, special tokens skipped.
        completion_ids: the generated ids, up to and including the end-of-sequence token.
        truncated: True where a completion hit ``max_new_tokens`` without ending.
        rewards: ``rewards[p][g]``, validated finite floats.
        correct: per completion, whether it is verifiably correct (None when the reward has no such notion).
        num_tokens: generated tokens in all.
        seconds: wall time of generation (scoring excluded).
    """

    rows: list[dict]
    texts: list[list[str]]
    completion_ids: list[list[list[int]]]
    truncated: list[list[bool]]
    rewards: list[list[float]]
    correct: list[bool] | None
    num_tokens: int
    seconds: float


def exact_match_part(reward: Reward) -> ExactMatchReward | None:
    """The reward's verifiable part: itself if an ``ExactMatchReward``, else the first one inside a ``WeightedSum``."""
    if isinstance(reward, ExactMatchReward):
        return reward
    for part in reward.rewards if isinstance(reward, WeightedSum) else []:
        if (found := exact_match_part(part)) is not None:
            return found
    return None


def _chunks(values: list, size: int) -> list[list]:
    return [values[i : i + size] for i in range(0, len(values), size)]


def score(reward: Reward, rows: list[dict], texts: list[str], per_prompt: int) -> list[float]:
    """Score flat, prompt-major ``texts`` (``per_prompt`` per row); row fields arrive as keyword lists.

    Raises:
        RewardError: the reward failed or returned something invalid; the message names the reward.
    """
    prompts = [row["prompt"] for row in rows for _ in range(per_prompt)]
    fields = {key: [row[key] for row in rows for _ in range(per_prompt)] for key in rows[0] if key != "prompt"}
    name = getattr(reward, "name", type(reward).__name__)
    try:
        return reward.score(prompts, texts, **fields)
    except RewardError:
        raise
    except Exception as err:  # a user reward may raise anything; say which reward it was
        raise RewardError(
            f"Reward {name!r} ({type(reward).__name__}) failed on {len(texts)} completions: {type(err).__name__}: {err}"
        ) from err


def _correct(reward: Reward, rows: list[dict], texts: list[str], per_prompt: int) -> list[bool] | None:
    verifier = exact_match_part(reward)
    if verifier is None:
        return None
    return [value == verifier.correct for value in score(verifier, rows, texts, per_prompt)]


def sample_and_score(
    sampler: torch.nn.Module | RolloutEngine,
    tokenizer,
    rows: list[dict],
    messages: list[list[dict]],
    reward: Reward,
    sampling: SamplingConfig,
    seed: int | None,
    progress: bool = False,
) -> Rollout:
    """Generate ``sampling.num_generations`` completions per prompt and score them.

    Args:
        sampler: a rollout engine refreshed with the policy (:mod:`hl_lightning.models.engines`), or the policy
            itself, sampled by the default engine (its current weights, under ``no_grad``).
        tokenizer (PreTrainedTokenizerBase): its tokenizer; prompts are rendered with its chat template, as in training.
        rows: the prompt rows (``prompt`` plus extra fields passed to the reward).
        messages: the prompts as chat messages, one list per row.
        reward: scores every completion (validated with ``Reward.score``).
        sampling: temperature, top_p, max_new_tokens, ...
        seed: seed of this call's sampling RNG (None: the global RNG).
        progress: show a tqdm bar labelled "rollout".
    """
    g = sampling.num_generations
    out = generate(
        sampler,
        tokenizer,
        messages,
        max_new_tokens=sampling.max_new_tokens,
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        num_return_sequences=g,
        seed=seed,
        batch_size=sampling.batch_size,
        progress=progress,
        desc="rollout",
    )
    rewards = score(reward, rows, out.texts, g)
    return Rollout(
        rows=list(rows),
        texts=_chunks(out.texts, g),
        completion_ids=_chunks(out.completion_ids, g),
        truncated=_chunks(out.truncated, g),
        rewards=_chunks(rewards, g),
        correct=_correct(reward, rows, out.texts, g),
        num_tokens=out.num_tokens,
        seconds=out.seconds,
    )


def rollout_metrics(rollouts: list[Rollout]) -> dict[str, float]:
    """``reward/mean``, ``reward/std`` (population), ``accuracy`` (verifiable rewards only),
    ``completions/mean_length`` (tokens), ``completions/clipped_ratio`` and ``rollout/tokens_per_s``."""
    rewards = [r for ro in rollouts for prompt in ro.rewards for r in prompt]
    lengths = [len(ids) for ro in rollouts for prompt in ro.completion_ids for ids in prompt]
    clipped = [t for ro in rollouts for prompt in ro.truncated for t in prompt]
    seconds = sum(ro.seconds for ro in rollouts)
    metrics = {
        "reward/mean": statistics.fmean(rewards),
        "reward/std": statistics.pstdev(rewards),
        "completions/mean_length": statistics.fmean(lengths),
        "completions/clipped_ratio": statistics.fmean(clipped),
        "rollout/tokens_per_s": sum(lengths) / seconds if seconds > 0 else 0.0,
    }
    correct = [ro.correct for ro in rollouts if ro.correct is not None]
    if len(correct) == len(rollouts):
        metrics["accuracy"] = statistics.fmean(c for flags in correct for c in flags)
    return metrics
