"""DPO (Rafailov et al., 2023) as a LightningModule; humanline DPO is the same module with a clip and a sync."""

from __future__ import annotations

from typing import Any

from hl_lightning.data.batches import PairedBatch
from hl_lightning.modules.paired import PairedModule
from hl_lightning.objectives import DPOLoss, LossOutput


class DPOModule(PairedModule):
    """Direct Preference Optimization on preference pairs (``PreferenceDataModule``, or ``OnlineDataModule``).

    Humanline DPO (Liu et al., 2025) = this module with ``clip: ClipLogRatio`` plus
    ``callbacks.RefSyncCallback`` in the trainer.

    Args:
        beta: DPO temperature: the loss is ``-logsigmoid(beta * (r_chosen - r_rejected))``.
        **kwargs: the shared options of ``AlignmentModule`` (model, clip, optimizer, ...).
    """

    def __init__(self, beta: float = 0.1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.objective = DPOLoss(beta=beta, clip=self.clip)

    def compute_loss(self, batch: PairedBatch) -> LossOutput:
        """DPO loss and metrics for a batch of pairs."""
        chosen, rejected, ref_chosen, ref_rejected = self.pair_logps(batch)
        return self.objective(
            policy_chosen_logps=chosen.logps, ref_chosen_logps=ref_chosen.logps, chosen_mask=chosen.mask,
            policy_rejected_logps=rejected.logps, ref_rejected_logps=ref_rejected.logps, rejected_mask=rejected.mask,
        )
