"""One sampling round: sample prompts, roll out, score, build the objective's units, collate the batches."""

from __future__ import annotations

import itertools
import logging

import numpy as np
import torch

from hl_lightning.data.batches import SkippedBatch
from hl_lightning.data.prompts import Prompt
from hl_lightning.models.engines import KVCacheEngine, RolloutEngine, SamplingConfig
from hl_lightning.online.builders import Builder
from hl_lightning.online.rollout import Rollout, rollout_metrics, sample_and_score
from hl_lightning.online.stream import PromptStream, deal
from hl_lightning.rewards import Reward

log = logging.getLogger(__name__)


def rollout_seed(seed: int, rank: int, call: int) -> int:
    """The sampling seed of the ``call``-th rollout (0-based) of ``rank``: independent streams per rank and call."""
    return int(np.random.SeedSequence([seed, rank, call]).generate_state(1)[0])


class RoundBuilder:
    """Builds the batches of sampling rounds for one rank (no Lightning inside: the caller passes the policy).

    A round samples ``prompts_per_round`` prompts from the rank's share of the prompt stream, generates
    ``num_generations`` completions each with the policy, scores them, and keeps the prompts the builder can
    use (:mod:`hl_lightning.online.builders`). When too few prompts are kept to give every batch of the round
    at least one (DPO / KTO pairs dropped for a small reward gap), it samples another ``prompts_per_round``
    prompts, up to ``max_rollouts`` rollouts per round. A round still short then is *starved*: with
    ``on_starved="train"`` it trains on what it kept (fewer batches, so the next round comes sooner), or skips
    one optimizer step when it kept nothing, with a warning; with ``on_starved="error"`` it raises. At most
    ``prompts_per_round`` kept prompts are used; they are dealt round-robin into the round's batches. Each round
    starts by refreshing the rollout engine with the policy it is given (``engine.refresh(policy)``); its rollouts
    then sample through the engine.

    Args:
        builder: what a prompt's scored completions become (pairs, items, groups) and how they are collated.
        reward: scores the completions.
        prompts: the train prompts.
        tokenizer: the policy's tokenizer (chat template, pad id).
        sampling: sampling settings.
        max_rollouts: most rollouts (``generate`` calls) per round.
        seed: base seed of the prompt order and of the sampling RNG (see :func:`rollout_seed`).
        rank: this process's rank; world: the number of processes (prompts are sharded over ranks).
        on_starved: "train" (default) or "error", see above.
        engine: what samples (:mod:`hl_lightning.models.engines`); None: our KV-cache decode (``KVCacheEngine``).
    """

    def __init__(
        self,
        builder: Builder,
        reward: Reward,
        prompts: list[Prompt],
        tokenizer,
        sampling: SamplingConfig,
        max_rollouts: int = 8,
        seed: int = 0,
        rank: int = 0,
        world: int = 1,
        on_starved: str = "train",
        engine: RolloutEngine | None = None,
    ) -> None:
        self.builder, self.reward, self.prompts, self.tokenizer = builder, reward, prompts, tokenizer
        self.sampling, self.max_rollouts, self.on_starved = sampling, max_rollouts, on_starved
        self.seed, self.rank = seed, rank
        self.engine = engine or KVCacheEngine()
        self.stream = PromptStream(len(prompts), seed, rank, world)
        self.calls = 0  # rollouts so far on this rank: the seed of the next one is rollout_seed(seed, rank, calls)
        self.starved = 0  # starved rounds so far
        self.ids = itertools.count()
        self.last_rollouts: list[Rollout] = []  # the latest round's rollouts (for sample_rows)
        self.max_length = max(len(p.prompt_ids) for p in prompts) + sampling.max_new_tokens

    def rollout(self, n_prompts: int, progress: bool = False) -> tuple[list[Prompt], Rollout]:
        """Sample ``n_prompts`` prompts of this rank's stream and roll them out with the engine (as last refreshed)."""
        chosen = [self.prompts[i] for i in self.stream.take(n_prompts)]
        seed = rollout_seed(self.seed, self.rank, self.calls)
        self.calls += 1
        return chosen, sample_and_score(
            self.engine,
            self.tokenizer,
            [p.row for p in chosen],
            [p.messages for p in chosen],
            self.reward,
            self.sampling,
            seed,
            progress,
        )

    def _units(self, chosen: list[Prompt], rollout: Rollout) -> list:
        units = (
            self.builder.unit(prompt.prompt_ids, ids, rewards)
            for prompt, ids, rewards in zip(chosen, rollout.completion_ids, rollout.rewards, strict=True)
        )
        return [unit for unit in units if unit is not None]

    def run(
        self, policy: torch.nn.Module, num_batches: int, prompts_per_round: int, progress: bool = False
    ) -> tuple[list, dict[str, float]]:
        """One round: up to ``num_batches`` batches from fresh samples of ``policy`` (the engine is refreshed with it
        first), and the round's metrics.

        Returns:
            The batches (typed, docs/CONTRACTS.md; a :class:`SkippedBatch` when nothing was kept) and
            ``reward/mean``, ``reward/std``, ``accuracy`` (verifiable rewards), ``completions/mean_length``,
            ``completions/clipped_ratio``, ``rollout/tokens_per_s``, ``rollout/dropped_prompts``,
            ``rollout/prompts`` (sampled this round), ``rollout/starved_rounds`` and ``rollout/seconds``.
        """
        units: list = []
        rollouts: list[Rollout] = []
        sampled = 0
        self.engine.refresh(policy)
        while len(units) < num_batches and len(rollouts) < self.max_rollouts:
            chosen, rollout = self.rollout(prompts_per_round, progress)
            rollouts.append(rollout)
            sampled += len(chosen)
            units += self._units(chosen, rollout)
        self.last_rollouts = rollouts
        if len(units) < num_batches:
            self._starve(len(units), num_batches, sampled, rollouts)
        units = units[:prompts_per_round]
        batches = [
            self.builder.collate(part, self.tokenizer.pad_token_id, self.max_length, self.ids)
            for part in deal(units, min(num_batches, len(units)))
        ] or [SkippedBatch()]
        metrics = {
            **rollout_metrics(rollouts),
            "rollout/dropped_prompts": float(sampled - len(units)),
            "rollout/prompts": float(sampled),
            "rollout/starved_rounds": float(self.starved),
            "rollout/seconds": sum(r.seconds for r in rollouts),
        }
        return batches, metrics

    def sample_rows(self, limit: int) -> list[dict]:
        """The latest round's first ``limit`` completions, in sampling order: ``prompt``, ``completion`` and its
        ``reward``."""
        rows = (
            {"prompt": row["prompt"], "completion": text, "reward": reward}
            for rollout in self.last_rollouts
            for row, texts, rewards in zip(rollout.rows, rollout.texts, rollout.rewards, strict=True)
            for text, reward in zip(texts, rewards, strict=True)
        )
        return list(itertools.islice(rows, max(limit, 0)))

    def _starve(self, kept: int, needed: int, sampled: int, rollouts: list[Rollout]) -> None:
        mean = rollout_metrics(rollouts)["reward/mean"]
        why = (
            f"{len(rollouts)} rollouts ({sampled} prompts x {self.sampling.num_generations} completions, reward "
            f"{self.reward.name!r}, mean {mean:.3g}) kept {kept} prompt(s) for {needed} batch(es) with "
            f"{self.builder!r}: the other prompts were dropped because {self.builder.why_dropped()}"
        )
        fix = (
            "Raise temperature or num_generations, use a builder that keeps more (e.g. a lower min_gap), a "
            "reward with more spread, or a higher max_rollouts_per_round."
        )
        if self.on_starved == "error":
            raise RuntimeError(f"Online round starved (on_starved: error): {why}. {fix}")
        self.starved += 1
        action = "training on what was kept" if kept else "skipping this optimizer step"
        log.warning("Starved online round %d: %s; %s. %s", self.starved, why, action, fix)
