"""hl_lightning: DPO, IPO, SimPO, KTO and GRPO as PyTorch Lightning modules, with humanline clipping and syncing.

The main names import from here (``from hl_lightning import DPOModule, RefSyncCallback``): the modules, the loss
objects and clips, the callbacks and the data modules. Each loads on first use, so ``import hl_lightning`` stays
light (no torch) until one is asked for. Everything else lives in its subpackage (``hl_lightning.models``,
``hl_lightning.rewards``, ...).
"""

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("hl-lightning")
except PackageNotFoundError:  # a source tree on sys.path that was never installed
    __version__ = "0+unknown"

_EXPORTS = {
    "hl_lightning.modules": ("AlignmentModule", "DPOModule", "GRPOModule", "IPOModule", "KTOModule", "SimPOModule"),
    "hl_lightning.objectives": (
        "ClipLogRatio",
        "DPOLoss",
        "GRPOLoss",
        "IPOLoss",
        "KTOLoss",
        "SampleLogRatio",
        "SimPOLoss",
    ),
    "hl_lightning.callbacks": ("HeldOutEval", "MetricsPlot", "PreemptionCheckpoint", "RefSyncCallback"),
    "hl_lightning.data": ("GroupDataModule", "PreferenceDataModule", "UnpairedPreferenceDataModule"),
    "hl_lightning.online": ("OnlineDataModule",),
}
_SOURCE = {name: package for package, names in _EXPORTS.items() for name in names}

__all__ = [  # the names of _EXPORTS, spelled out so that tools reading the source see them
    "AlignmentModule",
    "ClipLogRatio",
    "DPOLoss",
    "DPOModule",
    "GRPOLoss",
    "GRPOModule",
    "GroupDataModule",
    "HeldOutEval",
    "IPOLoss",
    "IPOModule",
    "KTOLoss",
    "KTOModule",
    "MetricsPlot",
    "OnlineDataModule",
    "PreemptionCheckpoint",
    "PreferenceDataModule",
    "RefSyncCallback",
    "SampleLogRatio",
    "SimPOLoss",
    "SimPOModule",
    "UnpairedPreferenceDataModule",
    "__version__",
]

if TYPE_CHECKING:
    from hl_lightning.callbacks import HeldOutEval, MetricsPlot, PreemptionCheckpoint, RefSyncCallback
    from hl_lightning.data import GroupDataModule, PreferenceDataModule, UnpairedPreferenceDataModule
    from hl_lightning.modules import AlignmentModule, DPOModule, GRPOModule, IPOModule, KTOModule, SimPOModule
    from hl_lightning.objectives import (
        ClipLogRatio,
        DPOLoss,
        GRPOLoss,
        IPOLoss,
        KTOLoss,
        SampleLogRatio,
        SimPOLoss,
    )
    from hl_lightning.online import OnlineDataModule


def __getattr__(name: str) -> Any:
    """Import a public name's subpackage on first access and keep the name here."""
    package = _SOURCE.get(name)
    if package is None:
        raise AttributeError(f"module 'hl_lightning' has no attribute {name!r}")
    value = getattr(importlib.import_module(package), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public names and the module's own dunders (what tab completion offers)."""
    return sorted({*__all__, *(name for name in globals() if name.startswith("__"))})
