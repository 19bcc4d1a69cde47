"""The shared base of every objective: policy + frozen reference, the dual forward pass, clipping, logging."""

from __future__ import annotations

import copy
import logging
import warnings
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities import rank_zero_only
from transformers import PreTrainedModel
from typing_extensions import override

from hl_lightning.models.loading import load_causal_lm, load_tokenizer
from hl_lightning.models.logprobs import TokenLogps, completion_logps
from hl_lightning.modules.ref_cache import RefLogpCache
from hl_lightning.objectives import ClipLogRatio

log = logging.getLogger(__name__)
# The reference is in eval mode on purpose; Lightning would warn about it at every fit.
warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode at the start of training")


def default_optimizer(params) -> torch.optim.Optimizer:
    """AdamW as in the paper's runs (weight decay 0.01, betas 0.9/0.999), fused kernel, lr 5e-6."""
    return torch.optim.AdamW(params, lr=5e-6, weight_decay=0.01, fused=True)


class AlignmentModule(LightningModule):
    """Owns the policy, its frozen reference, the dual forward pass and the humanline clip.

    Subclasses implement ``compute_loss(batch) -> LossOutput``; this class runs it for training and
    validation and logs ``loss`` plus every metric the objective reports (``val/`` prefix on held-out data),
    and in training the floats of a batch's optional ``"log"`` dict (data-side metrics, e.g. online rollouts).

    Args:
        model: the policy: a model spec (``"smollm2"`` = embedded SmolLM2-135M-Instruct, ``"tiny-random"``
            for tests, a local ``save_pretrained`` directory, or a Hub id), or, from Python, a loaded causal LM.
        clip: humanline clipping of per-token log-ratios (``hl_lightning.objectives.ClipLogRatio``);
            ``null`` trains the plain objective. Independent of reference syncing (``RefSyncCallback``).
        optimizer: optimizer factory (``class_path`` in YAML); default AdamW(lr=5e-6, weight_decay=0.01, fused).
        lr_scheduler: LR scheduler factory, stepped every optimizer step; e.g. ``torch.optim.lr_scheduler.LinearLR``
            with ``start_factor: 0.1`` and ``total_iters`` = warm-up steps. ``null`` keeps the LR constant.
        dtype: weights dtype, ``float32`` (fastest on CPU), ``bfloat16`` or ``float16``. Log-probs are fp32 always.
        gradient_checkpointing: recompute activations in backward to save memory (slower).
        cache_ref_logps: serve reference log-probs from a per-example cache after their first computation.
            Saves the reference forward from the second epoch on; incompatible with reference syncing.
        export_dir: if set, the trained policy and tokenizer are saved there with ``save_pretrained`` at the end
            of ``fit`` (reload with plain ``transformers``).
    """

    def __init__(
        self,
        model: str | PreTrainedModel = "smollm2",
        clip: ClipLogRatio | None = None,
        optimizer: OptimizerCallable | None = None,
        lr_scheduler: LRSchedulerCallable | None = None,
        dtype: str = "float32",
        gradient_checkpointing: bool = False,
        cache_ref_logps: bool = False,
        export_dir: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["model", "optimizer", "lr_scheduler", "clip"])
        self.policy = (load_causal_lm(model, dtype) if isinstance(model, str) else model).train()
        self.ref = copy.deepcopy(self.policy).eval().requires_grad_(False)  # a real copy, never shared storage
        if gradient_checkpointing:
            self.policy.gradient_checkpointing_enable()
        self.model_spec = model if isinstance(model, str) else None
        self.clip = clip
        self.optimizer_factory = optimizer or default_optimizer
        self.scheduler_factory = lr_scheduler
        self.ref_cache = RefLogpCache() if cache_ref_logps else None
        self.export_dir = export_dir

    # ----------------------------------------------------------------- reference
    @override
    def train(self, mode: bool = True) -> AlignmentModule:
        super().train(mode)
        self.ref.eval()  # the reference never runs dropout
        return self

    @torch.no_grad()
    def sync_reference(self) -> None:
        """Copy the policy's current weights into the reference, by value (``copy_``, no rebinding).

        Goes through ``state_dict`` (parameters and persistent buffers, sharded alike under FSDP2); a tied
        weight appears under two names and is copied twice, which costs a few ms and is harmless.
        """
        for ref_t, policy_t in zip(self.ref.state_dict().values(), self.policy.state_dict().values(), strict=True):
            ref_t.copy_(policy_t)

    @property
    def serves_cached_ref_logps(self) -> bool:
        """True when reference log-probs come from a cache; a synced reference would then be ignored."""
        return self.ref_cache is not None

    @override
    def configure_model(self) -> None:
        """Under ``ModelParallelStrategy``, shard policy and reference identically with FSDP2 (per decoder
        layer, then the rest), so a sync copies each rank's own shards, with no gather. No-op otherwise."""
        if self.device_mesh is None or getattr(self, "_sharded", False):
            return
        from torch.distributed.fsdp import fully_shard

        mesh = self.device_mesh["data_parallel"]
        for model in (self.policy, self.ref):
            for layer in model.get_decoder().layers:
                fully_shard(layer, mesh=mesh)
            fully_shard(model, mesh=mesh)  # embeddings, final norm and a tied LM head share this unit
        self._sharded = True

    # ----------------------------------------------------------------- forward
    def forward_logps(self, model: torch.nn.Module, batch: dict[str, torch.Tensor], prefix: str = "") -> TokenLogps:
        """Per-token log-probs of ``model`` (policy or reference) on a batch's ``prefix`` rows: the one place
        both run. Objectives override it to run a prompt shared by several rows once (``share_prompt``)."""
        return completion_logps(
            model, batch[f"{prefix}input_ids"], batch[f"{prefix}attention_mask"], batch[f"{prefix}completion_mask"],
        )

    def policy_logps(self, batch: dict[str, torch.Tensor], prefix: str = "") -> TokenLogps:
        """Per-token log-probs of the policy, with gradient."""
        return self.forward_logps(self.policy, batch, prefix)

    @torch.no_grad()
    def ref_logps(self, batch: dict[str, torch.Tensor], prefix: str = "") -> torch.Tensor:
        """Per-token log-probs of the reference, under ``no_grad`` (from the cache when enabled)."""
        def compute() -> torch.Tensor:
            return self.forward_logps(self.ref, batch, prefix).logps

        if self.ref_cache is None or prefix or "index" not in batch:
            return compute()
        return self.ref_cache.lookup(batch, compute)

    def dual_logps(self, batch: dict[str, torch.Tensor], prefix: str = "") -> tuple[TokenLogps, torch.Tensor]:
        """Policy log-probs (with gradient) and reference log-probs (no gradient) for one batch."""
        return self.policy_logps(batch, prefix), self.ref_logps(batch, prefix)

    # ----------------------------------------------------------------- loop
    def compute_loss(self, batch: dict[str, torch.Tensor]):
        """Return the objective's ``LossOutput`` for a batch. Implemented by each objective module."""
        raise NotImplementedError(f"{type(self).__name__} must implement compute_loss")

    @override
    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        out = self.compute_loss(batch)
        batch_size = len(batch["index"])
        self.log("loss", out.loss.detach(), prog_bar=True, batch_size=batch_size)
        self.log_dict(out.metrics, batch_size=batch_size)
        self.log_dict(batch.get("log", {}), batch_size=batch_size)  # data-side metrics, e.g. online rollouts
        return out.loss

    @override
    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        out = self.compute_loss(batch)
        metrics = {"val/loss": out.loss, **{f"val/{k}": v for k, v in out.metrics.items()}}
        self.log_dict(metrics, batch_size=len(batch["index"]), sync_dist=True, prog_bar=False)

    @override
    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(self.policy.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ----------------------------------------------------------------- export
    def tokenizer(self):
        """The tokenizer of the data being trained on, else the one that belongs to the model spec."""
        datamodule = self.trainer.datamodule if self._trainer is not None else None
        if getattr(datamodule, "tokenizer", None) is not None:
            return datamodule.tokenizer
        return None if self.model_spec is None else load_tokenizer(self.model_spec)

    def export(self, directory: str | Path) -> Path:
        """Save the policy (and tokenizer, when known) with ``save_pretrained``; returns the directory."""
        directory = Path(directory)
        self.policy.save_pretrained(directory)
        if (tokenizer := self.tokenizer()) is not None:
            tokenizer.save_pretrained(directory)
        return directory

    @override
    def on_fit_end(self) -> None:
        if self.export_dir is not None:
            self._export_and_record(self.export_dir)

    @rank_zero_only
    def _export_and_record(self, directory: str) -> None:
        path = self.export(directory).resolve()
        log.info("Saved the trained policy to %s", path)
        if self.logger is not None:
            self.logger.log_hyperparams({"saved_model_path": str(path)})
