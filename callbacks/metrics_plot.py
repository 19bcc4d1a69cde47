"""Training curves as a picture: a PNG next to the run, and in the MLflow run as an artifact."""

from __future__ import annotations

import os
from collections import defaultdict

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import MLFlowLogger
from lightning.pytorch.utilities import rank_zero_only
from typing_extensions import override


class MetricsPlot(Callback):
    """Records training metrics every optimizer step and plots them against the step at the end of fit.

    The figure goes to ``<default_root_dir>/<filename>`` and, with an MLflow logger, into the run's artifacts.

    Args:
        metrics: names of logged training metrics to plot (missing ones are skipped).
        filename: name of the PNG file.
    """

    def __init__(self, metrics: list[str] | None = None, filename: str = "training_curves.png") -> None:
        self.metrics = metrics or ["loss", "rewards/margins", "rewards/accuracies", "humanline/abs_log_ratio"]
        self.filename = filename
        self.history: dict[str, list[tuple[int, float]]] = defaultdict(list)

    @override
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        for name in self.metrics:
            if name in trainer.callback_metrics:
                self.history[name].append((trainer.global_step, float(trainer.callback_metrics[name])))

    @override
    @rank_zero_only
    def on_fit_end(self, trainer: pl.Trainer, pl_module) -> None:
        names = [n for n in self.metrics if self.history[n]]
        if not names:
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.2), squeeze=False)
        for ax, name in zip(axes[0], names, strict=True):
            steps, values = zip(*self.history[name], strict=True)
            ax.plot(steps, values, lw=1.2)
            ax.set_title(name)
            ax.set_xlabel("optimizer step")
            ax.grid(alpha=0.3)
        fig.tight_layout()
        os.makedirs(trainer.default_root_dir, exist_ok=True)
        path = os.path.join(trainer.default_root_dir, self.filename)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        for logger in trainer.loggers:
            if isinstance(logger, MLFlowLogger):
                logger.experiment.log_artifact(logger.run_id, path)
        print(f"  Training curves: {os.path.abspath(path)}")
