"""DPO (Rafailov et al., 2023) as a LightningModule; humanline DPO is the same module with a clip and a sync."""

from __future__ import annotations

from typing import Any

import torch

from hl_lightning.models.logprobs import TokenLogps
from hl_lightning.models.shared_prefix import paired_groups, shared_prefix_logps
from hl_lightning.modules.base import AlignmentModule
from hl_lightning.objectives import DPOLoss, LossOutput


class DPOModule(AlignmentModule):
    """Direct Preference Optimization on paired batches (``PreferenceDataModule``).

    One forward pass covers chosen and rejected completions together (rows ``[0, B)`` chosen, ``[B, 2B)``
    rejected), for the policy and, under ``no_grad``, for the reference. Humanline DPO (Liu et al., 2025)
    = this module with ``clip: ClipLogRatio`` plus ``callbacks.RefSyncCallback`` in the trainer.

    Args:
        beta: DPO temperature: the loss is ``-logsigmoid(beta * (r_chosen - r_rejected))``.
        share_prompt: run each prompt once for its chosen and rejected completion (policy and reference)
            instead of once per completion: same log-probs and gradients, fewer FLOPs and less activation
            memory (``hl_lightning.models.shared_prefix``). Falls back to the plain path where it cannot apply.
        **kwargs: the shared options of ``AlignmentModule`` (model, clip, optimizer, ...).
    """

    def __init__(self, beta: float = 0.1, share_prompt: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.objective = DPOLoss(beta=beta, clip=self.clip)
        self.share_prompt = share_prompt

    def forward_logps(self, model: torch.nn.Module, batch: dict[str, torch.Tensor], prefix: str = "") -> TokenLogps:
        """Per-token log-probs; with ``share_prompt``, each pair's prompt runs once for both completions."""
        if not self.share_prompt or prefix:
            return super().forward_logps(model, batch, prefix)
        return shared_prefix_logps(model, batch["input_ids"], batch["attention_mask"], batch["completion_mask"],
                                   paired_groups(len(batch["index"])))

    def compute_loss(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        """DPO loss and metrics for a paired batch."""
        policy, ref = self.dual_logps(batch)
        n = len(batch["index"])
        return self.objective(
            policy_chosen_logps=policy.logps[:n], ref_chosen_logps=ref[:n], chosen_mask=policy.mask[:n],
            policy_rejected_logps=policy.logps[n:], ref_rejected_logps=ref[n:], rejected_mask=policy.mask[n:],
        )
