"""KTO (Ethayarajh et al., 2024) as a LightningModule; humanline KTO adds the clip and the sync."""

from __future__ import annotations

from typing import Any

import torch

from hl_lightning.models.logprobs import TokenLogps, completion_logps
from hl_lightning.models.shared_prefix import paired_groups, shared_prefix_logps, stack_rows
from hl_lightning.modules.base import AlignmentModule
from hl_lightning.objectives import KTOLoss, LossOutput, token_log_ratio


class KTOModule(AlignmentModule):
    """Kahneman-Tversky Optimization on unpaired batches (``UnpairedPreferenceDataModule``).

    The KL term is estimated the KTO way: each item's prompt is paired with the completion of another
    item of the batch (the ``kl_*`` rows), policy and reference are run on these mismatched pairs under
    ``no_grad``, and the same (clipped, under humanline) summed log-ratio is averaged over all pairs of
    all ranks, floored at 0, and passed to the loss as a constant. Under humanline the KL pairs are
    clipped too and measured against the synced reference, so the estimate stays near 0 (spec H.21).

    Args:
        beta: KTO temperature.
        desirable_weight: weight w_D of the desirable items' loss (the paper's runs: 1.1 for KTO).
        undesirable_weight: weight w_U of the undesirable items' loss.
        share_prompt: score each item and its KL row (whose prompt is the item's own) in one sequence with
            the prompt run once, for the policy and the reference: same log-probs and gradients, fewer FLOPs
            (``hl_lightning.models.shared_prefix``). Not used with ``cache_ref_logps`` (plain path then).
        **kwargs: the shared options of ``AlignmentModule`` (model, clip, optimizer, ...).
    """

    def __init__(self, beta: float = 0.1, desirable_weight: float = 1.0, undesirable_weight: float = 1.0,
                 share_prompt: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.objective = KTOLoss(beta=beta, desirable_weight=desirable_weight,
                                 undesirable_weight=undesirable_weight, clip=self.clip)
        self.share_prompt = share_prompt

    @torch.no_grad()
    def kl_mean(self, batch: dict[str, torch.Tensor],
                kl_logps: tuple[TokenLogps, torch.Tensor] | None = None) -> torch.Tensor:
        """Mean (clipped) summed log-ratio over the mismatched pairs of every rank (before the floor).
        ``kl_logps``: the KL rows' (policy, reference) log-probs when already computed (shared prompts)."""
        if batch["kl_input_ids"].shape[0] < 2:
            raise ValueError(
                "KTO needs at least 2 items per batch on each process to build mismatched (prompt, other "
                "completion) pairs for its KL estimate; raise data.batch_size to 2 or more."
            )
        if kl_logps is None:
            policy = completion_logps(self.policy, batch["kl_input_ids"], batch["kl_attention_mask"],
                                      batch["kl_completion_mask"])
            ref = self.ref_logps(batch, prefix="kl_")
        else:
            policy, ref = kl_logps
        rewards = token_log_ratio(policy.logps, ref, policy.mask, self.clip).sum(-1)  # (B,)
        total = torch.stack([rewards.sum(), torch.tensor(float(len(rewards)), device=rewards.device)])
        total = self.trainer.strategy.reduce(total, reduce_op="sum") if self._trainer is not None else total
        return total[0] / total[1]

    def kl_estimate(self, batch: dict[str, torch.Tensor],
                    kl_logps: tuple[TokenLogps, torch.Tensor] | None = None) -> torch.Tensor:
        """KTO's reference point z0: ``kl_mean`` floored at 0, a constant (no gradient)."""
        return self.kl_mean(batch, kl_logps).clamp(min=0)

    def joint_logps(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[TokenLogps, TokenLogps]:
        """``model``'s log-probs of the items and of their KL rows in one forward, item i's prompt run once for
        its own completion and its KL completion. The KL rows' log-probs are detached (a constant in KTO)."""
        n, width, kl_width = len(batch["input_ids"]), batch["input_ids"].shape[1], batch["kl_input_ids"].shape[1]
        out = shared_prefix_logps(model, *stack_rows(batch, ("", "kl_")), paired_groups(n))
        return (TokenLogps(out.logps[:n, : width - 1], out.mask[:n, : width - 1]),
                TokenLogps(out.logps[n:, : kl_width - 1].detach(), out.mask[n:, : kl_width - 1]))

    def compute_loss(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        """KTO loss and metrics for an unpaired batch."""
        if self.share_prompt and self.ref_cache is None:
            policy, policy_kl = self.joint_logps(self.policy, batch)
            with torch.no_grad():
                ref, ref_kl = self.joint_logps(self.ref, batch)
            return self.objective(policy_logps=policy.logps, ref_logps=ref.logps, mask=policy.mask,
                                  desirable=batch["desirable"], kl=self.kl_estimate(batch, (policy_kl, ref_kl.logps)))
        policy, ref = self.dual_logps(batch)
        return self.objective(policy_logps=policy.logps, ref_logps=ref, mask=policy.mask,
                              desirable=batch["desirable"], kl=self.kl_estimate(batch))
