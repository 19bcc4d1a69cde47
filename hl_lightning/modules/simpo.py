"""SimPO (Meng et al., 2024) as a LightningModule: reference-free, so no reference is copied or run."""

from __future__ import annotations

from typing import Any

from hl_lightning.data.batches import PairedBatch
from hl_lightning.modules.paired import PairedModule
from hl_lightning.objectives import LossOutput, SimPOLoss


class SimPOModule(PairedModule):
    """Simple Preference Optimization on preference pairs (the data of ``DPOModule``), without a reference.

    There is no reference model, so humanline does not apply: ``clip``, ``cache_ref_logps`` and
    ``RefSyncCallback`` are refused with a message.

    Args:
        beta: scale of the length-normalised log-probs (the SimPO paper: 2.0 to 2.5).
        gamma: target reward margin (the SimPO paper: about 0.5 to 1.5).
        **kwargs: the shared options of ``AlignmentModule`` (model, optimizer, ...).
    """

    needs_reference = False
    # Not a PairLoss: SimPO replaces compute_loss, the one user of PairedModule's objective.
    objective: SimPOLoss  # type: ignore[assignment]

    def __init__(self, beta: float = 2.0, gamma: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.objective = SimPOLoss(beta=beta, gamma=gamma)

    def compute_loss(self, batch: PairedBatch) -> LossOutput:
        """SimPO loss and metrics for a batch of pairs."""
        chosen, rejected, _, _ = self.pair_logps(batch)
        return self.objective(
            policy_chosen_logps=chosen.logps,
            chosen_mask=chosen.mask,
            policy_rejected_logps=rejected.logps,
            rejected_mask=rejected.mask,
        )
