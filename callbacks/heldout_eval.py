"""Held-out scoring that fits the data: exact match where rows have an ``answer``, else a reward, else nothing."""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any, Literal, Protocol

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_only
from typing_extensions import override

from hl_lightning.evaluation import exact_match_accuracy, reward_answers, win_rate
from hl_lightning.rewards import Reward
from hl_lightning.tables import HELDOUT_ANSWERS, log_table

log = logging.getLogger(__name__)


class HeldOutData(Protocol):
    """What HeldOutEval reads from the data module: its held-out rows and its tokenizer."""

    tokenizer: Any

    def held_out_rows(self) -> list[dict]:
        """The raw held-out rows, ``prompt`` (and ``answer`` where known) in each."""
        ...


class HeldOutEval(Callback):
    """Scores the policy's greedy answers to the data module's held-out prompts (``held_out_rows()``).

    What is scored is chosen by the data and the options (``metric``):

    - ``"auto"`` (default): exact match (``eval/exact_match``: the last integer of the answer equals the row's
      ``answer``) when every held-out row has an integer ``answer``; otherwise the mean ``reward`` of the
      answers (``eval/reward``) when a reward is given; otherwise nothing (an info line says so; the
      objective's own ``val/*`` metrics are then the held-out signal). Shipped configs use this, so they run on
      any TRL-format file.
    - ``"exact_match"``: require an ``answer`` column; data without one fails at setup, naming the column.
    - ``"reward"``: require ``reward``.
    - ``"win_rate"``: for unverifiable tasks: the share of held-out prompts whose answer now scores higher under
      ``reward`` (the judge) than the *initial* policy's answer to the same prompt (ties count 1/2; 0.5 before
      training by definition); ``eval/reward`` (the mean judge score) is logged beside it. The initial answers'
      scores travel in the checkpoint, so a resumed run compares with the same baseline.

    Scores before training (step 0), every ``every_n_steps`` optimizer steps when set, and after training;
    logs the metric at each point and ``<metric>_before`` / ``<metric>_after`` as run parameters, and prints
    the change. Each distinct prompt is scored once (unpaired data lists a question once per completion).
    Only rank 0 evaluates. With an MLflow logger, each scoring's answers also go to the run's table
    ``tables/heldout_answers.json`` (columns ``step``, ``prompt``, ``completion``, ``score``: exact match 0/1 or
    the reward / judge score; docs/tracking.md).

    Args:
        metric: "auto", "exact_match", "reward" or "win_rate" (see above).
        reward: scores answers when there is no ``answer`` column, and judges ``win_rate``
            (``hl_lightning.rewards``, ``class_path``).
        max_new_tokens: generation budget per answer.
        limit: score only the first ``limit`` held-out prompts (``null`` = all).
        batch_size: prompts per generation batch (larger batches share each decoding step; lower it to save memory).
        every_n_steps: also score every this many optimizer steps (``null`` = only before and after).
        initial: the step-0 score, when it is already known for this very initial policy, prompts and
            generation budget (greedy decoding makes it the same in every run: a sweep scores it once and passes
            it here); ``null`` scores it.
        table_rows: the most answers per scoring in the MLflow table (0: no table).
    """

    def __init__(
        self,
        metric: Literal["auto", "exact_match", "reward", "win_rate"] = "auto",
        reward: Reward | None = None,
        max_new_tokens: int = 24,
        limit: int | None = None,
        batch_size: int = 100,
        every_n_steps: int | None = None,
        initial: float | None = None,
        table_rows: int = 64,
    ) -> None:
        if metric not in ("auto", "exact_match", "reward", "win_rate"):
            raise ValueError(f"HeldOutEval(metric={metric!r}): choose 'auto', 'exact_match', 'reward' or 'win_rate'.")
        if metric in ("reward", "win_rate") and reward is None:
            raise ValueError(
                f"HeldOutEval(metric={metric!r}) needs a reward, e.g. reward: {{class_path: "
                "hl_lightning.rewards.SentimentReward}."
            )
        if every_n_steps is not None and every_n_steps < 1:
            raise ValueError(f"HeldOutEval(every_n_steps={every_n_steps}): must be >= 1, or null.")
        self.metric, self.reward, self.every_n_steps = metric, reward, every_n_steps
        self.max_new_tokens, self.limit, self.batch_size = max_new_tokens, limit, batch_size
        self.initial, self.table_rows = initial, table_rows
        self.chosen: str | None = None  # "exact_match", "reward" or None (nothing to score), set at setup
        self.before: float | None = None
        self.after: float | None = None
        self.history: list[tuple[int, float]] = []
        self.initial_scores: list[float] | None = None  # win_rate: the judge's scores of the initial answers
        self.answers: list[dict] = []  # the latest scoring's prompts, answers and per-prompt scores
        self.judge_history: list[tuple[int, float]] = []  # win_rate: the mean judge score by step
        self.eval_s = 0.0  # seconds spent scoring the held-out set: a run's wall-clock minus this is its training time

    def _data(self, trainer: pl.Trainer) -> HeldOutData:
        data = trainer.datamodule  # type: ignore[attr-defined]  # Lightning sets it without declaring it
        if not hasattr(data, "held_out_rows"):
            raise TypeError(
                "HeldOutEval needs a data module with held_out_rows() (hl_lightning.data, "
                "hl_lightning.online.OnlineDataModule); remove the callback for another data module."
            )
        return data

    def _rows(self, trainer: pl.Trainer) -> list[dict]:
        rows = list({str(row["prompt"]): row for row in self._data(trainer).held_out_rows()}.values())
        return rows[: self.limit]

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Choose what to score from the held-out rows; refuse ``exact_match`` on data without ``answer``."""
        if stage != "fit":
            return
        rows = self._rows(trainer)
        has_answers = bool(rows) and all(
            isinstance(r.get("answer"), int) and not isinstance(r.get("answer"), bool) for r in rows
        )
        source = getattr(self._data(trainer), "val_source", "the held-out data")
        if self.metric == "exact_match" and not has_answers:
            raise ValueError(
                f"HeldOutEval(metric='exact_match') needs an integer 'answer' column in every held-out "
                f"row, and {source} has none (or not in every row). Use metric: auto (scores "
                "with a reward, or not at all) or add the column."
            )
        self.chosen = (
            "win_rate"
            if self.metric == "win_rate"
            else "exact_match"
            if has_answers and self.metric != "reward"
            else "reward"
            if self.reward is not None
            else None
        )
        if self.chosen is None:
            log.info(
                "HeldOutEval: %s has no integer 'answer' column and no reward was given: no held-out "
                "generation scoring; the val/* metrics are the held-out signal.",
                source,
            )

    def _score(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> float:
        rows, tokenizer, policy = self._rows(trainer), self._data(trainer).tokenizer, pl_module.policy
        assert isinstance(policy, torch.nn.Module), "HeldOutEval scores the module's policy model"
        budget, batch_size = self.max_new_tokens, self.batch_size
        if self.chosen == "exact_match":
            result = exact_match_accuracy(policy, tokenizer, rows, max_new_tokens=budget, batch_size=batch_size)
            self._keep(rows, result.texts, [float(ok) for ok in result.correct])
            return result.accuracy
        texts, scores = reward_answers(
            policy, tokenizer, rows, self.reward, max_new_tokens=budget, batch_size=batch_size
        )
        self._keep(rows, texts, scores)
        if self.chosen == "reward":
            return sum(scores) / len(scores)
        self.initial_scores = self.initial_scores or scores  # the first scoring is the initial policy's
        self.judge_history.append((trainer.global_step, sum(scores) / len(scores)))
        for logger in trainer.loggers:
            logger.log_metrics({"eval/reward": sum(scores) / len(scores)}, step=trainer.global_step)
        return win_rate(scores, self.initial_scores)

    def _keep(self, rows: list[dict], texts: list[str], scores: list[float]) -> None:
        """The scored answers (``heldout.json``'s ``final_answers``): per prompt, the score exact match or the judge
        gave it, which comparisons between runs pair by prompt."""
        self.answers = [
            {"prompt": row["prompt"], "completion": text, "score": score}
            for row, text, score in zip(rows, texts, scores, strict=True)
        ]

    def _record(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, when: str | None, known: float | None = None
    ) -> float:
        start = time.perf_counter()
        value = self._score(trainer, pl_module) if known is None else known
        self.eval_s += time.perf_counter() - start
        if known is None:
            log_table(trainer, self.answers, HELDOUT_ANSWERS, self.table_rows, step=trainer.global_step)
        self.history.append((trainer.global_step, value))
        for logger in trainer.loggers:
            logger.log_metrics({f"eval/{self.chosen}": value}, step=trainer.global_step)
            if when is not None:
                logger.log_hyperparams({f"eval/{self.chosen}_{when}": round(value, 4)})
        label = when + " training" if when else f"at step {trainer.global_step}"
        print(f"Held-out {self._title()} {label}: {self._fmt(value)} on {len(self._rows(trainer))} prompts")
        return value

    @override
    @rank_zero_only
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.chosen is not None:
            known = self.initial if trainer.global_step == 0 and self.chosen != "win_rate" else None
            self.before = self._record(trainer, pl_module, "before", known)

    @override
    @rank_zero_only
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        step = trainer.global_step
        due = self.every_n_steps and step % self.every_n_steps == 0 and step < (trainer.max_steps or 0)
        if self.chosen is not None and due and (not self.history or self.history[-1][0] != step):
            self._record(trainer, pl_module, None)

    @override
    @rank_zero_only
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.chosen is None:
            return
        self.after = self._record(trainer, pl_module, "after")
        print(f"Held-out {self._title()}: {self._fmt(self.before)} before -> {self._fmt(self.after)} after training")
        self._write(trainer)

    def _title(self) -> str:
        return (self.chosen or "nothing").replace("_", " ")

    def _fmt(self, value: float | None) -> str:
        if value is None:
            return "not scored"
        return f"{value:.1%}" if self.chosen in ("exact_match", "win_rate") else f"{value:.4g}"

    @override
    def state_dict(self) -> dict:
        return {
            "history": self.history,
            "initial_scores": self.initial_scores,
            "before": self.before,
            "judge_history": self.judge_history,
            "eval_s": self.eval_s,
        }

    @override
    def load_state_dict(self, state_dict: dict) -> None:
        self.history = [tuple(h) for h in state_dict.get("history", [])]
        self.initial_scores = state_dict.get("initial_scores")
        self.before = state_dict.get("before")
        self.judge_history = [tuple(h) for h in state_dict.get("judge_history", [])]
        self.eval_s = state_dict.get("eval_s", 0.0)

    def _write(self, trainer: pl.Trainer) -> None:
        """``<default_root_dir>/heldout.json``: the scores by step, the mean judge score by step (win-rate), the last
        rollout metrics, the final per-prompt answers and scores, and the initial answers' judge scores in the same
        prompt order (win-rate): what sweeps read to compare runs prompt by prompt."""
        rollout = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("rollout/")}
        record = {
            "metric": self.chosen,
            "history": self.history,
            "judge_history": self.judge_history,
            "initial_scores": self.initial_scores,  # win_rate: the judge's scores of the initial answers, in order
            "final_rollout_metrics": rollout,
            "eval_s": self.eval_s,
            "final_answers": self.answers,
        }
        os.makedirs(trainer.default_root_dir, exist_ok=True)
        with open(os.path.join(trainer.default_root_dir, "heldout.json"), "w", encoding="utf-8") as f:
            json.dump(record, f)
