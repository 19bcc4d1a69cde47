"""IPO (Azar et al., 2023) as a LightningModule: an objective with a reference, so humanline applies."""

from __future__ import annotations

from typing import Any

from hl_lightning.data.batches import PairedBatch
from hl_lightning.modules.paired import PairedModule
from hl_lightning.objectives import IPOLoss, LossOutput


class IPOModule(PairedModule):
    """Identity Preference Optimization on preference pairs (the data of ``DPOModule``).

    Humanline IPO = this module with ``clip: ClipLogRatio`` plus ``callbacks.RefSyncCallback``.

    Args:
        beta: IPO regularisation: the loss is ``(h - 1 / (2 * beta))^2`` on the length-normalised log-ratio
            margin ``h`` (``hl_lightning.objectives.IPOLoss``).
        **kwargs: the shared options of ``AlignmentModule`` (model, clip, optimizer, ...).
    """

    def __init__(self, beta: float = 0.1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.objective = IPOLoss(beta=beta, clip=self.clip)

    def compute_loss(self, batch: PairedBatch) -> LossOutput:
        """IPO loss and metrics for a batch of pairs."""
        chosen, rejected, ref_chosen, ref_rejected = self.pair_logps(batch)
        return self.objective(
            policy_chosen_logps=chosen.logps, ref_chosen_logps=ref_chosen.logps, chosen_mask=chosen.mask,
            policy_rejected_logps=rejected.logps, ref_rejected_logps=ref_rejected.logps, rejected_mask=rejected.mask,
        )
