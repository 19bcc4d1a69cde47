"""The shared base of objectives on preference pairs (DPO, IPO, SimPO): one forward for both completions."""

from __future__ import annotations

from typing import ClassVar

from hl_lightning.data.batches import PairedBatch
from hl_lightning.models.logprobs import TokenLogps
from hl_lightning.modules.base import AlignmentModule
from hl_lightning.modules.spec import PAIRED
from hl_lightning.objectives import LossOutput
from hl_lightning.objectives.pairs import PairLoss


class PairedModule(AlignmentModule):
    """An objective on ``PairedBatch`` es (``PreferenceDataModule`` offline, ``PairBuilder`` online).

    :meth:`pair_logps` runs chosen and rejected rows in one forward (each pair's prompt once with
    ``share_prompt``), for the policy and, under ``no_grad``, the reference, and returns them by role; the
    default :meth:`compute_loss` feeds them to ``self.objective`` (a ``PairLoss``: DPO, IPO).
    """

    spec = PAIRED
    objective: PairLoss  # set by each subclass
    plot_metrics: ClassVar[list[str]] = ["loss", "rewards/margins", "rewards/accuracies", "humanline/abs_log_ratio"]

    def pair_logps(self, batch: PairedBatch) -> tuple[TokenLogps, TokenLogps, TokenLogps | None, TokenLogps | None]:
        """``(policy chosen, policy rejected, reference chosen, reference rejected)``; the reference ones are
        None for a reference-free objective."""
        parts = [batch.chosen, batch.rejected]
        (chosen, rejected), ref = self.split_dual(batch.rows(), parts)
        return chosen, rejected, *(ref or (None, None))

    def compute_loss(self, batch: PairedBatch) -> LossOutput:
        """The pair loss (``self.objective``) and its metrics, chosen rows as chosen, rejected as rejected."""
        chosen, rejected, ref_chosen, ref_rejected = self.pair_logps(batch)
        assert ref_chosen is not None and ref_rejected is not None, "a pair loss runs a reference"
        return self.objective(
            policy_chosen_logps=chosen.logps,
            ref_chosen_logps=ref_chosen.logps,
            chosen_mask=chosen.mask,
            policy_rejected_logps=rejected.logps,
            ref_rejected_logps=ref_rejected.logps,
            rejected_mask=rejected.mask,
        )
