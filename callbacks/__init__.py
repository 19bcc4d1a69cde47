"""Lightning callbacks for hl_lightning: humanline reference syncing, held-out evaluation, training curves."""

from callbacks.heldout_eval import HeldOutEval, HeldOutExactMatch
from callbacks.metrics_plot import MetricsPlot
from callbacks.ref_sync import RefSyncCallback

__all__ = ["HeldOutEval", "HeldOutExactMatch", "MetricsPlot", "RefSyncCallback"]
