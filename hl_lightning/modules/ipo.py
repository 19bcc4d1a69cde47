"""IPO (Azar et al., 2023) as a LightningModule: an objective with a reference, so humanline applies."""

from __future__ import annotations

from typing import Any

from hl_lightning.modules.paired import PairedModule
from hl_lightning.objectives import IPOLoss


class IPOModule(PairedModule):
    """Identity Preference Optimization on preference pairs (the data of ``DPOModule``).

    Humanline IPO = this module with ``clip: ClipLogRatio`` plus ``hl_lightning.callbacks.RefSyncCallback``.

    Args:
        beta: IPO regularisation: the loss is ``(h - 1 / (2 * beta))^2`` on the length-normalised log-ratio
            margin ``h`` (``hl_lightning.objectives.IPOLoss``).
        **kwargs: the shared options of ``AlignmentModule`` (model, clip, optimizer, ...).
    """

    def __init__(self, beta: float = 0.1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.objective = IPOLoss(beta=beta, clip=self.clip)
