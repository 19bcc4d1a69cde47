"""Lightning callbacks for hl_lightning: humanline reference syncing, held-out evaluation, training curves, a clean
stop with a checkpoint on SIGTERM or SLURM's requeue signal, and what a run shows (a progress bar counting steps, a
one-line parameter count)."""

from hl_lightning.callbacks.heldout_eval import HeldOutEval
from hl_lightning.callbacks.metrics_plot import MetricsPlot
from hl_lightning.callbacks.preemption import PreemptionCheckpoint
from hl_lightning.callbacks.progress import ParameterSummary, StepProgressBar
from hl_lightning.callbacks.ref_sync import RefSyncCallback

__all__ = [
    "HeldOutEval",
    "MetricsPlot",
    "ParameterSummary",
    "PreemptionCheckpoint",
    "RefSyncCallback",
    "StepProgressBar",
]
