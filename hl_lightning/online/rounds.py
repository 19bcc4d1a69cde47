"""One sampling round: sample prompts, roll out, score, build the objective's units, collate the batches."""

from __future__ import annotations

import itertools

import numpy as np
import torch

from hl_lightning.online.builders import Objective, select
from hl_lightning.online.items import PromptStream, collate_units, deal, make_unit
from hl_lightning.online.prompts import Prompt
from hl_lightning.online.rollout import Rollout, SamplingConfig, rollout_metrics, sample_and_score
from hl_lightning.rewards import Reward


def rollout_seed(seed: int, rank: int, call: int) -> int:
    """The sampling seed of the ``call``-th rollout (0-based) of ``rank``: independent streams per rank and call."""
    return int(np.random.SeedSequence([seed, rank, call]).generate_state(1)[0])


class RoundBuilder:
    """Builds the batches of sampling rounds for one rank (no Lightning inside: the caller passes the policy).

    A round samples ``prompts_per_round`` prompts from the rank's share of the prompt stream, generates
    ``num_generations`` completions each with the policy, scores them, and keeps the prompts the objective
    can use (see :mod:`hl_lightning.online.builders`). When too few prompts are kept to give every batch
    of the round at least one (DPO / KTO pairs dropped for a small reward gap), it samples another
    ``prompts_per_round`` prompts, up to ``max_rollouts`` rollouts per round, then fails with an error that
    says why. At most ``prompts_per_round`` kept prompts are used; they are dealt round-robin into the
    round's batches and collated with the offline collate functions.

    Args:
        objective: "dpo", "kto" or "grpo".
        reward: scores the completions.
        prompts: the train prompts.
        tokenizer: the policy's tokenizer (chat template, pad id).
        sampling: sampling settings.
        select_options: ``pair_threshold``, ``kto_mode``, ``kto_threshold``, ``advantage_eps`` for
            :func:`hl_lightning.online.builders.select`.
        max_rollouts: most rollouts (``generate`` calls) per round.
        seed: base seed of the prompt order and of the sampling RNG (see :func:`rollout_seed`).
        rank: this process's rank; world: the number of processes (prompts are sharded over ranks).
    """

    def __init__(self, objective: Objective, reward: Reward, prompts: list[Prompt], tokenizer,
                 sampling: SamplingConfig, select_options: dict, max_rollouts: int = 8, seed: int = 0,
                 rank: int = 0, world: int = 1) -> None:
        self.objective, self.reward, self.prompts, self.tokenizer = objective, reward, prompts, tokenizer
        self.sampling, self.select_options, self.max_rollouts = sampling, select_options, max_rollouts
        self.seed, self.rank = seed, rank
        self.stream = PromptStream(len(prompts), seed, rank, world)
        self.calls = 0  # rollouts so far on this rank: the seed of the next one is rollout_seed(seed, rank, calls)
        self.ids = itertools.count()
        self.max_length = max(len(p.prompt_ids) for p in prompts) + sampling.max_new_tokens

    def rollout(self, policy: torch.nn.Module, n_prompts: int, progress: bool = False) -> tuple[list[Prompt], Rollout]:
        """Sample ``n_prompts`` prompts of this rank's stream and roll them out with ``policy``."""
        chosen = [self.prompts[i] for i in self.stream.take(n_prompts)]
        seed = rollout_seed(self.seed, self.rank, self.calls)
        self.calls += 1
        return chosen, sample_and_score(policy, self.tokenizer, [p.row for p in chosen], [p.messages for p in chosen],
                                        self.reward, self.sampling, seed, progress)

    def _units(self, chosen: list[Prompt], rollout: Rollout) -> list:
        units = []
        for prompt, ids, rewards in zip(chosen, rollout.completion_ids, rollout.rewards, strict=True):
            selection = select(self.objective, rewards, **self.select_options)
            if selection is not None:
                units.append(make_unit(self.objective, prompt.prompt_ids, ids, rewards, selection))
        return units

    def run(self, policy: torch.nn.Module, num_batches: int, prompts_per_round: int,
            progress: bool = False) -> tuple[list[dict], dict[str, float]]:
        """One round: ``num_batches`` batches from fresh samples of ``policy``, and the round's metrics.

        Returns:
            The batches (docs/CONTRACTS.md) and ``reward/mean``, ``reward/std``, ``accuracy`` (verifiable
            rewards), ``completions/mean_length``, ``completions/clipped_ratio``, ``rollout/tokens_per_s``,
            ``rollout/dropped_prompts``, ``rollout/prompts`` (sampled this round) and ``rollout/seconds``.
        """
        units, rollouts, sampled = [], [], 0
        while len(units) < num_batches:
            if len(rollouts) == self.max_rollouts:
                raise RuntimeError(self._starved(len(units), num_batches, sampled, rollouts))
            chosen, rollout = self.rollout(policy, prompts_per_round, progress)
            rollouts.append(rollout)
            sampled += len(chosen)
            units += self._units(chosen, rollout)
        dropped = sampled - len(units)
        pad_id = self.tokenizer.pad_token_id
        batches = [collate_units(self.objective, part, pad_id, self.max_length, self.ids)
                   for part in deal(units[:prompts_per_round], num_batches)]
        metrics = {**rollout_metrics(rollouts), "rollout/dropped_prompts": float(dropped),
                   "rollout/prompts": float(sampled), "rollout/seconds": sum(r.seconds for r in rollouts)}
        return batches, metrics

    def _starved(self, kept: int, needed: int, sampled: int, rollouts: list[Rollout]) -> str:
        mean = rollout_metrics(rollouts)["reward/mean"]
        return (
            f"Online {self.objective.upper()}: {len(rollouts)} rollouts of this round ({sampled} prompts x "
            f"{self.sampling.num_generations} completions, reward {self.reward.name!r}, mean {mean:.3g}) kept only "
            f"{kept} prompt(s), but the round has {needed} batch(es) to fill: the other prompts' completions "
            f"all got rewards within pair_threshold={self.select_options['pair_threshold']} of each other, so "
            "the reward cannot tell them apart. Raise temperature or num_generations, lower pair_threshold, use "
            "kto_mode: threshold (KTO), use a reward with more spread, or raise max_rollouts_per_round."
        )
