"""Online mode as a data module: the current policy samples, a reward scores, the objective trains on it."""

from __future__ import annotations

import copy
import functools
import itertools
import logging
import time
from typing import TYPE_CHECKING, Literal

import lightning as L
from torch.utils.data import DataLoader, IterableDataset

from hl_lightning.data.batches import from_state, to_state
from hl_lightning.data.handover import ModelHandle
from hl_lightning.data.prompts import Prompt, data_paths, holdout_split, load_prompts, tokenizer_spec
from hl_lightning.models.engines import KVCacheEngine, RolloutEngine, SamplingConfig, check_engine
from hl_lightning.models.loading import load_tokenizer
from hl_lightning.online.builders import Builder
from hl_lightning.online.checks import OnlineOptions, check_model, check_sampling, check_table, check_trainer
from hl_lightning.online.rounds import RoundBuilder
from hl_lightning.rewards import RewardLike, user_reward
from hl_lightning.tables import ONLINE_SAMPLES, log_table

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

log = logging.getLogger(__name__)


class RolloutTicket(int):
    """A placeholder batch: the data module turns it into real data right before the training step."""


class _Tickets(IterableDataset):
    def __iter__(self):
        return map(RolloutTicket, itertools.count())


def _identity(batch):
    return batch


class OnlineDataModule(L.LightningDataModule):
    """Online DPO / KTO / GRPO (any objective module): every ``sample_every_n_steps`` optimizer steps the
    *current* policy samples.

    A round, on each rank: take the next ``sample_every_n_steps * prompts_per_step`` prompts of this rank's
    share of a seeded, endless prompt order; refresh the rollout ``engine`` with the objective module's policy and
    generate ``num_generations`` completions each (its current weights, ``no_grad``, left padding, the
    tokenizer's chat template as in training; a tqdm bar labelled "rollout"); score them with ``reward``;
    turn them into the objective's units with ``builder`` (by default the one of the module's spec: DPO best
    vs worst pairs, KTO best / worst items, GRPO groups) and collate them into ``sample_every_n_steps *
    accumulate_grad_batches`` typed batches, then train on them. Sequences are the policy's own token ids.
    N = 1 is fully online; N = 64 is the paper's "64x less frequent sampling". The objective is named once,
    by the model's ``class_path``.

    The data are materialised in ``on_before_batch_transfer``, right before each training step: Lightning
    fetches one batch ahead, so a rollout run while iterating the loader would use weights one step old.
    Use this class as the trainer's ``datamodule``; the objective module hands itself over in its setup
    (``connect``), and training runs until ``trainer.max_steps`` (required).

    Reference: with ``reset_reference_each_round`` (the default, as the paper's online baselines) every round starts
    by asking the module to reset its reference to the current policy (``ModelHandle.reset_reference``): iterative /
    on-policy DPO, KTO and GRPO anchored at the sampling policy. The humanline configs set it to false and let
    ``RefSyncCallback`` govern the reference (every k steps, independent of N).

    Each batch carries ``log``: ``reward/mean``, ``reward/std``, ``accuracy`` (when the reward is or
    contains an ``ExactMatchReward``), ``completions/mean_length``, ``completions/clipped_ratio``,
    ``rollout/tokens_per_s``, ``rollout/time_frac``, ``rollout/dropped_prompts``, ``rollout/prompts``,
    ``rollout/starved_rounds`` and ``rollout/rounds``. There is no validation loop: use
    ``hl_lightning.callbacks.HeldOutEval``, which scores the held-out prompts (``held_out_rows``). With an MLflow
    logger, the samples of round 1 and of every ``table_every_n_rounds``-th round after it go to the run's table
    ``tables/online_samples.json`` (columns ``step``, ``round``, ``prompt``, ``completion``, ``reward``;
    docs/tracking.md).

    Args:
        reward: scores completions: a ``Reward`` (``class_path`` in YAML, e.g.
            ``hl_lightning.rewards.ExactMatchReward``), or a plain function ``f(prompts, completions, **columns)
            -> list[float]`` (an import path in YAML: ``my_rewards.length``). Extra prompt columns (``answer``)
            reach it as keyword lists. It is called once at construction, on the first prompt, to check it.
        builder: what a prompt's scored completions become (``hl_lightning.online.PairBuilder``,
            ``BestWorstItems``, ``ThresholdItems``, ``GroupBuilder``, with their thresholds); null: the
            default of the model's objective. Must make the model's batches (checked at setup).
        prompts: "arithmetic" or "sentiment" (a shipped task's ``prompts_train.jsonl``), or a JSONL/JSON/Parquet
            file or ``save_to_disk`` directory with a ``prompt`` column (string or chat messages) and any extra
            columns the reward needs.
        val_path: held-out prompt file (with ``answer`` for exact match in ``HeldOutEval``). None: the shipped
            ``prompts_test.jsonl`` of a shipped task, else a seeded ``val_fraction`` of ``prompts``.
        val_fraction: share of ``prompts`` held out when ``val_path`` is None (not for a shipped task).
        tokenizer: model spec whose tokenizer to use; None: the model's (the CLI links it to ``model.model``).
        columns: maps our column names to the file's, e.g. ``{"prompt": "question"}``.
        sample_every_n_steps: N, optimizer steps per sampling round (1 = fully online). Independent of
            ``RefSyncCallback``'s k.
        num_generations: completions per prompt (G >= 2).
        prompts_per_step: kept prompts per optimizer step per rank (pairs for DPO, groups for GRPO, prompts
            of items for KTO); a round samples N * this many prompts per rank.
        max_new_tokens: the most tokens per completion (a completion that hits it counts as clipped).
        temperature: sampling temperature (> 0).
        top_p: nucleus-sampling mass.
        seed: seed of the prompt order and of every rollout's sampling RNG (per rank and rollout).
        max_prompt_length: most prompt tokens (chat template included); longer prompts are an error (or
            dropped with ``skip_invalid``). Completions are never cut: a sequence has at most
            ``max_prompt_length + max_new_tokens`` tokens.
        reset_reference_each_round: reset the reference to the policy at the start of each round (HALOs
            online baselines); false with ``RefSyncCallback`` (humanline).
        max_rollouts_per_round: when too few prompts survive the builder to fill the round's batches, sample
            again, up to this many rollouts per round; the round is then *starved*.
        on_starved: "train": a starved round trains on what it kept, or skips one optimizer step when it kept
            nothing, with a warning and ``rollout/starved_rounds``; "error": raise instead.
        generation_batch_size: prompts per generation batch (each yields ``num_generations`` completions).
        skip_invalid: drop invalid prompt rows (with a warning) instead of raising.
        engine: what samples the rollouts (``hl_lightning.models.engines``, docs/rollout-engines.md); refreshed
            with the policy at the start of every round. null: ``hl_lightning.online.KVCacheEngine``, our KV-cache
            decode; ``hl_lightning.online.TransformersGenerateEngine`` samples with Hugging Face ``model.generate``.
        table_every_n_rounds: log a round's samples to the MLflow table every this many rounds (null: never).
        table_rows: the most completions per logged round (the first ones sampled).
    """

    def __init__(
        self,
        reward: RewardLike,
        builder: Builder | None = None,
        prompts: str = "arithmetic",
        val_path: str | None = None,
        val_fraction: float = 0.1,
        tokenizer: str | None = None,
        columns: dict[str, str | None] | None = None,
        sample_every_n_steps: int = 1,
        num_generations: int = 4,
        prompts_per_step: int = 2,
        max_new_tokens: int = 32,
        temperature: float = 0.7,
        top_p: float = 0.95,
        seed: int = 0,
        max_prompt_length: int = 128,
        reset_reference_each_round: bool = True,
        max_rollouts_per_round: int = 8,
        on_starved: Literal["train", "error"] = "train",
        generation_batch_size: int = 16,
        skip_invalid: bool = False,
        engine: RolloutEngine | None = None,
        table_every_n_rounds: int | None = 10,
        table_rows: int = 64,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["reward", "builder", "engine"])
        self.options = OnlineOptions.of(self.hparams)
        self.engine = check_engine(engine or KVCacheEngine(), "OnlineDataModule(engine=...)")
        self.sampling = check_sampling(
            SamplingConfig(num_generations, max_new_tokens, temperature, top_p, generation_batch_size),
            "OnlineDataModule",
        )
        self.reward, self.builder = user_reward(reward, prompts, columns), builder  # coerced, tried on one prompt
        self.tokenizer: PreTrainedTokenizerBase | None = None
        self.model: ModelHandle | None = None
        self.train_prompts: list[Prompt] = []
        self.val_prompts: list[Prompt] = []
        self.rounds_builder: RoundBuilder | None = None
        self._queue: list = []
        self._round_log: dict[str, float] = {}
        self.rounds, self.generation_seconds, self._start = 0, 0.0, time.perf_counter()
        self._resume: dict | None = None
        self.table_every_n_rounds, self.table_rows = check_table(table_every_n_rounds, table_rows)

    def setup(self, stage: str | None = None) -> None:
        """Check that the trainer fits online mode; with a ``tokenizer`` of its own, load the prompts now."""
        if self.trainer is not None and stage in (None, "fit"):
            check_trainer(self.trainer, self.options.prompts_per_step)
        if self.options.tokenizer is not None:
            self._load_prompts()

    def connect(self, model: ModelHandle) -> None:
        """The objective module hands itself over (in its setup): its spec picks the builder, its policy samples,
        and the prompts are read with its tokenizer unless this data module names its own."""
        self.builder = check_model(model, self.builder)
        self.model = model
        self._load_prompts()

    def _load_prompts(self) -> None:
        if self.tokenizer is not None:
            return
        hp = self.options
        self.tokenizer = load_tokenizer(tokenizer_spec(hp.tokenizer, self.model))
        train_path, val_path = data_paths(hp.prompts, hp.val_path, "prompts")
        self.val_source = str(val_path or f"the {hp.val_fraction:.0%} held-out split of {train_path}")
        read = functools.partial(
            load_prompts,
            tokenizer=self.tokenizer,
            max_prompt_length=hp.max_prompt_length,
            columns=hp.columns,
            skip_invalid=hp.skip_invalid,
        )
        self.train_prompts = read(train_path)
        if val_path is None:
            self.train_prompts, self.val_prompts = holdout_split(
                self.train_prompts, hp.val_fraction, hp.seed, str(train_path)
            )
        else:
            self.val_prompts = read(val_path)
        log.info("Online: %d train and %d held-out prompts", len(self.train_prompts), len(self.val_prompts))

    def train_dataloader(self) -> DataLoader:
        """An endless loader of placeholders; each becomes a batch of fresh samples before its training step."""
        if self.model is None or self.builder is None:
            raise TypeError(
                "OnlineDataModule builds batches for an hl_lightning objective module (DPOModule, KTOModule, "
                "GRPOModule, ...), which hands itself over in its setup; train one with this data module."
            )
        hp = self.options
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        self.rounds_builder = RoundBuilder(
            self.builder,
            self.reward,
            self.train_prompts,
            self.tokenizer,
            self.sampling,
            hp.max_rollouts_per_round,
            hp.seed,
            rank,
            world,
            hp.on_starved,
            self.engine,
        )
        self._queue, self._start = [], time.perf_counter()
        if self._resume:
            self._restore(self._resume)
            self._resume = None
        return DataLoader(_Tickets(), batch_size=None, collate_fn=_identity)

    def on_before_batch_transfer(self, batch, dataloader_idx: int):
        """Turn a placeholder into the next batch of fresh samples (running a rollout at a round's start)."""
        return self.next_batch() if isinstance(batch, RolloutTicket) else batch

    def next_batch(self):
        """The next training batch, with its ``log`` of rollout metrics; starts a new round when due."""
        if not self._queue:
            self._new_round()
        batch = self._queue.pop(0)
        elapsed = time.perf_counter() - self._start
        batch.log = {**self._round_log, "rollout/time_frac": self.generation_seconds / elapsed if elapsed else 0.0}
        return batch

    def _new_round(self) -> None:
        trainer, model, rounds = self.trainer, self.model, self.rounds_builder
        assert trainer is not None and model is not None and rounds is not None, "rounds start in training"
        steps = self.options.sample_every_n_steps
        if self.options.reset_reference_each_round and model.reset_reference is not None:
            model.reset_reference()  # the paper's online baselines: the reference restarts from the sampler
        progress = trainer.is_global_zero and trainer.progress_bar_callback is not None
        self._queue, metrics = rounds.run(
            model.policy, steps * trainer.accumulate_grad_batches, steps * self.options.prompts_per_step, progress
        )
        self.rounds += 1
        self.generation_seconds += metrics.pop("rollout/seconds")
        if self.table_every_n_rounds and (self.rounds - 1) % self.table_every_n_rounds == 0:
            rows = rounds.sample_rows(self.table_rows)
            log_table(trainer, rows, ONLINE_SAMPLES, self.table_rows, step=trainer.global_step, round=self.rounds)
        self._round_log = {**metrics, "rollout/rounds": float(self.rounds)}

    def held_out_rows(self) -> list[dict]:
        """The held-out prompt rows (``prompt`` plus ``answer`` and any other column), for evaluation."""
        self._load_prompts()
        return [prompt.row for prompt in self.val_prompts]

    def state_dict(self) -> dict:
        """Where the prompt stream and the sampling RNG are, and the rest of the current round (its batches not
        yet trained on), so a resumed run continues the round exactly."""
        if self.rounds_builder is None:
            return {}
        rb = self.rounds_builder
        return {
            "position": rb.stream.position,
            "calls": rb.calls,
            "rounds": self.rounds,
            "starved": rb.starved,
            "next_id": next(copy.copy(rb.ids)),
            "queue": [to_state(batch) for batch in self._queue],
            "round_log": dict(self._round_log),
        }

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore what :meth:`state_dict` saved (applied when the train loader is built)."""
        self._resume = state_dict or None

    def _restore(self, state: dict) -> None:
        rb = self.rounds_builder
        assert rb is not None, "restored when the train loader is built"
        rb.stream.position, rb.calls, rb.starved = state["position"], state["calls"], state.get("starved", 0)
        self.rounds, rb.ids = state["rounds"], itertools.count(state.get("next_id", 0))
        self._queue = [from_state(batch) for batch in state.get("queue", [])]
        self._round_log = state.get("round_log", {})
