"""Held-out exact-match accuracy before and after training (verifiable tasks such as the arithmetic set)."""

from __future__ import annotations

import logging

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_only
from typing_extensions import override

from hl_lightning.evaluation import exact_match_accuracy

log = logging.getLogger(__name__)


class HeldOutExactMatch(Callback):
    """Scores the policy on the data module's held-out questions (``prompt`` + integer ``answer``), greedy.

    Each distinct prompt is scored once (unpaired data lists a question once per completion).

    Runs once before training and once after, logs ``eval/exact_match`` at both points (step 0 and the
    last step) and ``eval/exact_match_before`` / ``eval/exact_match_after`` as run parameters, and prints
    the change. Only rank 0 evaluates.

    Args:
        max_new_tokens: generation budget per answer.
        limit: score only the first ``limit`` held-out rows (``null`` = all).
        batch_size: prompts per generation batch.
    """

    def __init__(self, max_new_tokens: int = 24, limit: int | None = None, batch_size: int = 32) -> None:
        self.max_new_tokens = max_new_tokens
        self.limit = limit
        self.batch_size = batch_size
        self.before: float | None = None
        self.after: float | None = None

    def _score(self, trainer: pl.Trainer, pl_module: pl.LightningModule, when: str) -> float:
        rows = list({str(row["prompt"]): row for row in trainer.datamodule.held_out_rows()}.values())  # a question
        rows = rows[: self.limit]  # appears twice in unpaired data (desirable and undesirable): score it once
        tokenizer = trainer.datamodule.tokenizer
        result = exact_match_accuracy(
            pl_module.policy, tokenizer, rows, max_new_tokens=self.max_new_tokens, batch_size=self.batch_size,
        )
        for logger in trainer.loggers:
            logger.log_metrics({"eval/exact_match": result.accuracy}, step=trainer.global_step)
            logger.log_hyperparams({f"eval/exact_match_{when}": round(result.accuracy, 4)})
        print(f"Held-out exact match {when} training: {result.accuracy:.1%} of {result.n} questions")
        return result.accuracy

    @override
    @rank_zero_only
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.datamodule is None or not hasattr(trainer.datamodule, "held_out_rows"):
            raise TypeError("HeldOutExactMatch needs a data module with held_out_rows() (hl_lightning.data)")
        self.before = self._score(trainer, pl_module, "before")

    @override
    @rank_zero_only
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.after = self._score(trainer, pl_module, "after")
        print(f"Held-out exact match: {self.before:.1%} before -> {self.after:.1%} after training")
