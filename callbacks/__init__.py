"""Lightning callbacks for hl_lightning: humanline reference syncing, held-out evaluation, training curves, a checkpoint
on SIGTERM."""

from hl_lightning.callbacks.heldout_eval import HeldOutEval
from hl_lightning.callbacks.metrics_plot import MetricsPlot
from hl_lightning.callbacks.preemption import CheckpointOnSigterm
from hl_lightning.callbacks.ref_sync import RefSyncCallback

__all__ = ["CheckpointOnSigterm", "HeldOutEval", "MetricsPlot", "RefSyncCallback"]
