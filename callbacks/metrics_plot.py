"""Training curves as a picture: a PNG next to the run, and in the MLflow run as an artifact."""

from __future__ import annotations

import os
from collections import defaultdict

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import MLFlowLogger
from lightning.pytorch.utilities import rank_zero_only
from typing_extensions import override

from hl_lightning.extras import pyplot, require

FALLBACK = ["loss", "humanline/abs_log_ratio"]


def ema(values: list[float], alpha: float) -> list[float]:
    """Exponential moving average ``s_t = alpha * s_{t-1} + (1 - alpha) * x_t``, started at the first value."""
    out: list[float] = []
    for x in values:
        out.append(x if not out else alpha * out[-1] + (1 - alpha) * x)
    return out


class MetricsPlot(Callback):
    """Records training metrics every optimizer step and plots them against the step once fit has finished (after
    the final held-out score).

    Each panel draws the raw per-step values as a faint line and their EMA over it; a panel of the held-out
    score is added when ``hl_lightning.callbacks.HeldOutEval`` scored the run. The figure goes to
    ``<default_root_dir>/<filename>`` and, with an MLflow logger, into the run's artifacts. Needs matplotlib
    (``pip install 'hl-lightning[plots]'``), checked when the callback is created.

    Args:
        metrics: names of logged training metrics to plot (missing ones are skipped); null: the objective's
            own (``plot_metrics`` of the module, e.g. margins and accuracies for DPO, ``kl`` for KTO, ``reward``
            for GRPO), plus the online rollout reward when there is one.
        smoothing: EMA factor of the smoothed line (0 = no smoothing, 0.9 = strong).
        filename: name of the PNG file.
    """

    def __init__(
        self, metrics: list[str] | None = None, smoothing: float = 0.8, filename: str = "training_curves.png"
    ) -> None:
        if not 0 <= smoothing < 1:
            raise ValueError(f"MetricsPlot(smoothing={smoothing}): must be in [0, 1), e.g. 0.8.")
        require("matplotlib", "plots", "MetricsPlot")  # fail before training, not after it
        self.metrics, self.smoothing, self.filename = metrics, smoothing, filename
        self.history: dict[str, list[tuple[int, float]]] = defaultdict(list)

    def names(self, pl_module: pl.LightningModule) -> list[str]:
        """The metrics to plot: the option, else the module's ``plot_metrics`` and online ``reward/mean``."""
        return self.metrics or [*getattr(pl_module, "plot_metrics", FALLBACK), "reward/mean", "accuracy"]

    @override
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        for name in self.names(pl_module):
            if name in trainer.callback_metrics:
                self.history[name].append((trainer.global_step, float(trainer.callback_metrics[name])))

    def _panels(self, trainer: pl.Trainer, pl_module) -> list[tuple[str, list[tuple[int, float]], bool]]:
        panels = [(n, self.history[n], True) for n in self.names(pl_module) if self.history.get(n)]
        for cb in trainer.callbacks:  # type: ignore[attr-defined]  # Lightning sets it without declaring it
            if getattr(cb, "history", None) and getattr(cb, "chosen", None):  # HeldOutEval
                panels.append((f"held-out {cb.chosen.replace('_', ' ')}", cb.history, False))
        return panels

    @override
    @rank_zero_only
    def teardown(self, trainer: pl.Trainer, pl_module, stage: str) -> None:
        """Draw once fit has finished: Lightning tears down after every callback's ``on_fit_end``, so the held-out
        panel has the final score whatever the order of the callbacks (not drawn for a run that failed)."""
        if stage != "fit":
            return
        panels = self._panels(trainer, pl_module)
        if not panels:
            return
        plt = pyplot("MetricsPlot")
        fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2), squeeze=False)
        for ax, (name, points, smooth) in zip(axes[0], panels, strict=True):
            steps, values = zip(*points, strict=True)
            if smooth:
                ax.plot(steps, values, lw=0.8, alpha=0.3, color="C0", label="per step")
                ax.plot(steps, ema(list(values), self.smoothing), lw=1.6, color="C0", label=f"EMA {self.smoothing}")
                ax.legend(fontsize=7, loc="best")
            else:
                ax.plot(steps, values, "o-", lw=1.4, color="C1")
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
