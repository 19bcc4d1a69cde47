"""What a run shows while it trains: a progress bar that counts optimizer steps, and a one-line parameter count."""

from __future__ import annotations

import sys
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback, TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.model_summary import get_human_readable_count
from typing_extensions import override

ROUNDS = "rollout/rounds"  # logged by hl_lightning.online.OnlineDataModule: sampling rounds so far


class StepProgressBar(TQDMProgressBar):
    """Lightning's plain-text progress bar (``TQDMProgressBar``), except that with ``trainer.max_steps`` set the
    training bar counts optimizer steps to ``max_steps`` over the whole run, whatever the epochs, the gradient
    accumulation or the (endless, online) data: ``epoch 1: 40%| 24/60``; online it names the sampling round:
    ``round 12: 20%| 12/60``. A resumed run starts at its step. Without ``max_steps`` it is Lightning's bar
    (batches of each epoch). The MLflow run's id (``v_num``) is not shown.

    Args:
        refresh_rate: redraw every this many steps (or batches, without ``max_steps``).
        leave: keep each epoch's bar on screen (only without ``max_steps``; with it there is one bar).
    """

    def __init__(self, refresh_rate: int = 1, leave: bool = False) -> None:
        super().__init__(refresh_rate=refresh_rate, leave=leave)

    @staticmethod
    def _counts_steps(trainer: pl.Trainer) -> bool:
        return trainer.max_steps is not None and trainer.max_steps > 0

    @override
    def init_train_tqdm(self) -> Tqdm:
        """The training bar; with ``max_steps``, one for the run: from the current step to ``max_steps``."""
        trainer = self.trainer
        if not self._counts_steps(trainer):
            return super().init_train_tqdm()
        return Tqdm(
            desc=self._where(trainer),
            total=trainer.max_steps,
            initial=trainer.global_step,
            position=2 * self.process_position,
            disable=self.is_disabled,
            leave=True,
            dynamic_ncols=True,
            file=sys.stdout,
            smoothing=0,
            bar_format=self.BAR_FORMAT,
        )

    @override
    def on_train_epoch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        if not self._counts_steps(trainer):
            super().on_train_epoch_start(trainer, *args)
            return
        self.train_progress_bar.set_description(self._where(trainer), refresh=False)

    @override
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not self._counts_steps(trainer):
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
            return
        bar, step = self.train_progress_bar, trainer.global_step
        if bar.disable or step == bar.n or not self._should_update(step, trainer.max_steps):
            return
        bar.n = step
        bar.set_description(self._where(trainer), refresh=False)
        bar.set_postfix(self.get_metrics(trainer, pl_module))  # refreshes

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._counts_steps(trainer):
            super().on_train_epoch_end(trainer, pl_module)
        elif not self.train_progress_bar.disable:
            self.train_progress_bar.set_postfix(self.get_metrics(trainer, pl_module))

    def _where(self, trainer: pl.Trainer) -> str:
        rounds = trainer.callback_metrics.get(ROUNDS)
        return f"round {int(rounds)}" if rounds is not None else f"epoch {trainer.current_epoch}"

    @override
    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict:
        """The metrics logged with ``prog_bar=True`` (the loss), without the logger's run id."""
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return metrics


class ParameterSummary(Callback):
    """One line at the start of fit instead of Lightning's model-summary table (set ``trainer.enable_model_summary:
    false`` beside it): the parameters in all, how many train, and per part of the module, e.g.
    ``Parameters: 270 M, 135 M trainable (policy 135 M trainable, reference 135 M frozen)``. With LoRA the
    policy shows its trainable adapter; a part that shares another's weights is not counted twice."""

    @override
    @rank_zero_only
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        print(parameter_summary(pl_module))


def parameter_summary(module: torch.nn.Module) -> str:
    """``Parameters: <all>, <trainable> trainable (<part> <count> trainable|frozen|, <n> of it trainable, ...)`` of
    ``module``, each
    parameter counted once, under the first child module that holds it."""
    seen: set[int] = set()
    parts = []
    for name, child in module.named_children():
        params = [p for p in child.parameters() if id(p) not in seen]
        seen.update(id(p) for p in params)
        count, trains = sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)
        if count:
            share = (
                " frozen" if not trains else " trainable" if trains == count else f", {_count(trains)} of it trainable"
            )
            parts.append(f"{name} {_count(count)}{share}")
    total = sum(p.numel() for p in module.parameters())  # each shared parameter once
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return f"Parameters: {_count(total)}, {_count(trainable)} trainable ({', '.join(parts)})"


def _count(n: int) -> str:
    return get_human_readable_count(n).strip()
