"""DPO (Rafailov et al., 2023) as a LightningModule; humanline DPO is the same module with a clip and a sync."""

from __future__ import annotations

from typing import Any

from hl_lightning.modules.paired import PairedModule
from hl_lightning.objectives import DPOLoss


class DPOModule(PairedModule):
    """Direct Preference Optimization on preference pairs (``PreferenceDataModule``, or ``OnlineDataModule``).

    Humanline DPO (Liu et al., 2025) = this module with ``clip: ClipLogRatio`` plus
    ``hl_lightning.callbacks.RefSyncCallback`` in the trainer.

    Args:
        beta: DPO temperature: the loss is ``-logsigmoid(beta * (r_chosen - r_rejected))``.
        **kwargs: the shared options of ``AlignmentModule`` (model, clip, optimizer, ...).
    """

    def __init__(self, beta: float = 0.1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.objective = DPOLoss(beta=beta, clip=self.clip)
