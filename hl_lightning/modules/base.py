"""The shared base of every objective: policy + frozen reference, the dual forward pass, clipping, logging."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.loggers import MLFlowLogger
from lightning.pytorch.utilities import rank_zero_only
from peft import PeftModel
from transformers import PreTrainedModel
from typing_extensions import override

from hl_lightning.checkpointing import CLIP_STATE_KEY, RUN_ID_KEY
from hl_lightning.data.batches import Rows, SkippedBatch, require
from hl_lightning.data.handover import ModelHandle
from hl_lightning.models.lean import make_lean
from hl_lightning.models.loading import load_causal_lm, load_tokenizer
from hl_lightning.models.logprobs import TokenLogps, completion_logps
from hl_lightning.models.shared_prefix import shared_prefix_logps
from hl_lightning.modules.checks import check_dtype, check_export_dir, check_family, check_tokenizer
from hl_lightning.modules.guard import SkipGuard
from hl_lightning.modules.holder import HoldsReference
from hl_lightning.modules.lora import LoraConfig, adapter_base, export_lora, lora_config_from, lora_hparams
from hl_lightning.objectives import ClipLogRatio, LossOutput, gate_from_spec
from hl_lightning.runtime import retain_freed_memory

if TYPE_CHECKING:
    from hl_lightning.models.logprobs import CausalLM
    from hl_lightning.modules.spec import ObjectiveSpec

log = logging.getLogger(__name__)
# The reference is in eval mode on purpose; Lightning would warn about it at every fit.
warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode at the start of training")


def default_optimizer(params) -> torch.optim.Optimizer:
    """AdamW as in the paper's runs (weight decay 0.01, betas 0.9/0.999), fused kernel, lr 5e-6."""
    return torch.optim.AdamW(params, lr=5e-6, weight_decay=0.01, fused=True)


class AlignmentModule(HoldsReference, SkipGuard):
    """Owns the policy, its reference (``reference``: an ``hl_lightning.modules.reference.Reference``), the dual
    forward pass and the humanline clip.

    Subclasses set ``spec`` (their data: ``hl_lightning.modules.spec``) and implement
    ``compute_loss(batch) -> LossOutput``; this class runs it for training and validation and logs ``loss``
    plus every metric the objective reports (``val/`` prefix on held-out data), and in training the floats of
    a batch's ``log`` (data-side metrics, e.g. online rollouts). A reference-free objective (SimPO) sets
    ``needs_reference = False``: no reference copy is made or run, and ``clip`` and ``RefSyncCallback`` are
    refused.

    Args:
        model: the policy: a model spec (``"smollm2"`` = embedded SmolLM2-135M-Instruct, ``"tiny-random"``
            for tests, a local ``save_pretrained`` directory, or a Hub id), or, from Python, a loaded causal LM.
        clip: humanline clipping of per-token log-ratios (``hl_lightning.objectives.ClipLogRatio``);
            ``null`` trains the plain objective. Independent of reference syncing (``RefSyncCallback``).
        optimizer: optimizer factory (``class_path`` in YAML); default AdamW(lr=5e-6, weight_decay=0.01, fused).
        lr_scheduler: LR scheduler factory, stepped every optimizer step; e.g. ``torch.optim.lr_scheduler.LinearLR``
            with ``start_factor: 0.1`` and ``total_iters`` = warm-up steps. ``null`` keeps the LR constant.
        dtype: weights dtype, ``float32`` (fastest on CPU), ``bfloat16`` or ``float16``. Log-probs are fp32 always.
            For mixed precision set ``trainer.precision`` instead (``bf16-mixed``, ``16-mixed``:
            docs/guides/scaling.md).
        gradient_checkpointing: recompute activations in backward to save memory (slower); the same loss and
            gradients, with ``share_prompt``, ``lean_activations`` and the chunked LM head too.
        cache_ref_logps: serve reference log-probs from a per-row cache after their first computation.
            Saves the reference forward from the second epoch on; incompatible with reference syncing.
        share_prompt: run a prompt shared by several rows of a batch once (DPO chosen + rejected, KTO item +
            KL row, a GRPO group), for the policy and the reference: same log-probs and gradients, fewer
            FLOPs and less activation memory (``hl_lightning.models.shared_prefix``).
        lean_activations: the policy's gated MLPs and RMSNorms (Llama, Mistral, Qwen) keep fewer tensors for the
            backward and recompute their elementwise part instead (no matrix product is recomputed): same values
            and gradients, less activation memory (``hl_lightning.models.lean``). Other architectures run as is.
        retain_cpu_memory: on a CPU device, keep freed memory in the process's heap for the next step instead of
            returning it to the OS and faulting it in again (glibc; process-wide, ``hl_lightning.runtime``).
        export_dir: if set, the trained policy and tokenizer are saved there with ``save_pretrained`` at the end
            of ``fit`` (reload with plain ``transformers``).
        max_consecutive_skips: a step whose loss or gradient norm is not finite is skipped (no update, no
            sync; ``train/skipped_steps``); this many skips in a row stop the run with an error.
        peft: train a LoRA adapter instead of every weight (``class_path: peft.LoraConfig`` with ``r``,
            ``lora_alpha``, ``lora_dropout``, ``target_modules``). No second model is kept: the reference is the
            base with the adapter disabled, or, with ``RefSyncCallback``, a frozen second adapter that each sync
            overwrites with the trainable one (``hl_lightning.modules.lora``).
        merge: with ``peft``, ``export_dir`` receives the adapter merged into the base (a plain ``transformers``
            model) instead of the adapter alone (loadable with ``peft.PeftModel.from_pretrained``).
    """

    spec: ClassVar[ObjectiveSpec]
    needs_reference: ClassVar[bool] = True
    plot_metrics: ClassVar[list[str]] = ["loss", "humanline/abs_log_ratio"]  # MetricsPlot's default panels

    def __init__(
        self,
        model: str | PreTrainedModel = "smollm2",
        clip: ClipLogRatio | None = None,
        optimizer: OptimizerCallable | None = None,
        lr_scheduler: LRSchedulerCallable | None = None,
        dtype: str = "float32",
        gradient_checkpointing: bool = False,
        cache_ref_logps: bool = False,
        share_prompt: bool = True,
        lean_activations: bool = True,
        retain_cpu_memory: bool = True,
        export_dir: str | None = None,
        max_consecutive_skips: int = 10,
        peft: LoraConfig | None = None,
        merge: bool = False,
    ) -> None:
        super().__init__()
        check_export_dir(export_dir)
        clip = gate_from_spec(clip) if isinstance(clip, dict) else clip  # as saved in a checkpoint
        self._refuse_without_reference(clip, cache_ref_logps)
        self._guard_init(max_consecutive_skips)
        peft = lora_config_from(peft)
        self._refuse_merge_without_peft(peft, merge)
        self.save_hyperparameters(ignore=["model", "optimizer", "lr_scheduler", "clip", "peft"])
        self._save_reload_hparams(model, clip)
        self.hparams["peft"] = None if peft is None else lora_hparams(peft)
        self.policy = load_causal_lm(model, dtype) if isinstance(model, str) else model
        self.policy.train()
        if lean_activations:
            make_lean(self.policy)  # before the reference copy, which inherits it
        self.reference = self._make_reference(peft, cache_ref_logps)
        if gradient_checkpointing:
            self.policy.gradient_checkpointing_enable()  # non-reentrant: LoRA grads flow past frozen embeddings
        self.model_spec = model if isinstance(model, str) else None
        self.clip, self.share_prompt, self.export_dir = clip, share_prompt, export_dir
        self.optimizer_factory = optimizer or default_optimizer
        self.scheduler_factory = lr_scheduler

    def _save_reload_hparams(self, model: str | PreTrainedModel | None, clip: ClipLogRatio | None) -> None:
        """Put what ``load_from_checkpoint`` needs to rebuild this module into its hyperparameters: the model
        spec (None when a model object was passed: then ``model=`` must be given on reload) and the clip bounds.
        The optimizer and scheduler factories are not saved (give them again to train further)."""
        if model is None:
            raise ValueError(
                f"{type(self).__name__}: model is None. This checkpoint was trained on a model object, "
                f"not a spec: call {type(self).__name__}.load_from_checkpoint(path, model=...) with a "
                "model spec or a model of the same architecture."
            )
        self.hparams["model"] = model if isinstance(model, str) else None
        self.hparams["clip"] = (
            None
            if clip is None
            else {"class_path": f"{type(clip).__module__}.{type(clip).__qualname__}", "init_args": clip.init_args()}
        )

    def _refuse_merge_without_peft(self, peft: LoraConfig | None, merge: bool) -> None:
        if merge and peft is None:
            raise ValueError(
                f"{type(self).__name__}: merge=true merges a LoRA adapter at export, but peft is not "
                "set: add peft (class_path: peft.LoraConfig) or remove merge."
            )

    def _refuse_without_reference(self, clip: ClipLogRatio | None, cache_ref_logps: bool) -> None:
        if self.needs_reference:
            return
        for option, value in (("clip", clip), ("cache_ref_logps", cache_ref_logps or None)):
            if value is not None:
                raise ValueError(
                    f"{type(self).__name__} is reference-free, so {option} does not apply (humanline "
                    f"needs a reference): remove {option} from the model's options."
                )

    # ----------------------------------------------------------------- forward
    def forward_logps(self, model: CausalLM, rows: Rows) -> TokenLogps:
        """Per-token log-probs of ``model`` (policy or reference) on ``rows``: the one place both run. With
        ``share_prompt``, each group of ``rows.shared`` runs its prompt once (same result)."""
        tensors = (rows.input_ids, rows.attention_mask, rows.completion_mask)
        if self.share_prompt and rows.shared:
            return shared_prefix_logps(model, *tensors, rows.shared)
        return completion_logps(model, *tensors)

    def ref_logps(self, rows: Rows) -> TokenLogps | None:
        """Per-token log-probs of the reference, under ``no_grad``; None for a reference-free objective."""
        if self.reference is None:
            return None
        return self.reference.logps(self.policy, rows, lambda model: self.forward_logps(model, rows))

    def dual_logps(self, rows: Rows) -> tuple[TokenLogps, TokenLogps | None]:
        """Policy log-probs (with gradient) and reference log-probs (no gradient) of the same rows; the latter
        are the former, detached, while the reference holds the policy's weights (``reference_is_policy``)."""
        policy = self.forward_logps(self.policy, rows)
        return policy, policy.detach() if self.reference_is_policy else self.ref_logps(rows)

    def split_dual(self, rows: Rows, parts: list[Rows]) -> tuple[list[TokenLogps], list[TokenLogps] | None]:
        """:meth:`dual_logps` of ``rows = Rows.cat(parts, ...)``, split back into the parts."""
        policy, ref = self.dual_logps(rows)
        return policy.split(parts), None if ref is None else ref.split(parts)

    # ----------------------------------------------------------------- loop
    def compute_loss(self, batch) -> LossOutput:
        """Return the objective's ``LossOutput`` for a batch of ``spec.batch``. Implemented by each objective."""
        raise NotImplementedError(f"{type(self).__name__} must implement compute_loss")

    @override
    def setup(self, stage: str) -> None:
        """Hand this module over to its data module (``connect``: spec, model spec, policy; the data's tokenizer
        follows the model), then refuse a dtype the device cannot run, a data tokenizer larger than the model's
        vocabulary and an hl_lightning data module of another objective family (``hl_lightning.modules.checks``);
        on a CPU device, keep freed memory for reuse (``retain_cpu_memory``)."""
        if self.hparams.get("retain_cpu_memory", True) and self.device.type == "cpu":
            retain_freed_memory()
        check_dtype(self.policy, self.hparams.get("dtype"))
        datamodule = self.datamodule()
        if callable(connect := getattr(datamodule, "connect", None)):
            connect(self.handle())
        check_tokenizer(self.policy, getattr(datamodule, "tokenizer", None), self.model_spec)
        check_family(self, datamodule)

    def datamodule(self) -> Any:
        """The trainer's data module (None without a trainer or a data module)."""
        return self.trainer.datamodule if self._trainer is not None else None  # type: ignore[attr-defined]  # set, not declared

    def handle(self) -> ModelHandle:
        """What a data module learns about this module (``hl_lightning.data.handover``)."""
        reset = self.sync_reference if self.reference is not None else None
        return ModelHandle(
            type(self).__name__, self.spec, self.model_spec, self.policy, reset, self.serves_cached_ref_logps
        )

    @override
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Record the MLflow run id, so a resumed CLI run logs into the same run, and the clip's state."""
        for logger in self.loggers:
            if isinstance(logger, MLFlowLogger) and logger._run_id is not None:
                checkpoint[RUN_ID_KEY] = logger.run_id
        if callable(state := getattr(self.clip, "state_dict", None)):  # humanline sampling: its generator
            checkpoint[CLIP_STATE_KEY] = state()  # so a resume draws the same

    @override
    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore the clip's state (humanline sampling's generator) saved by :meth:`on_save_checkpoint`."""
        if self.adapters is not None and any(".reference." in key for key in checkpoint.get("state_dict", {})):
            self.enable_reference_sync()  # the checkpoint was trained with a synced reference adapter
        if CLIP_STATE_KEY in checkpoint and callable(load := getattr(self.clip, "load_state_dict", None)):
            load(checkpoint[CLIP_STATE_KEY])

    @override
    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        if isinstance(batch, SkippedBatch):  # nothing to train on: a zero loss on every rank, and a skipped step
            self.mark_skip("the online round kept no prompt", [])
            self.log_dict(batch.log, batch_size=1)
            return (
                torch.stack([p.reshape(-1)[:1].sum() for p in self.policy.parameters() if p.requires_grad]).sum() * 0.0
            )
        require(batch, self.spec.batch, type(self).__name__)
        out = self.compute_loss(batch)
        if not torch.isfinite(out.loss):
            self.mark_skip("non-finite loss", batch.index.tolist())
        self.log("loss", out.loss.detach(), prog_bar=True, batch_size=len(batch))
        self.log_dict(out.metrics, batch_size=len(batch))
        self.log_dict(batch.log, batch_size=len(batch))  # data-side metrics, e.g. online rollouts
        return out.loss

    @override
    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.reference is not None:
            self.reference.policy_changed()  # this batch's optimizer step (automatic or manual) has run
        self.log("train/skipped_steps", float(self.skipped_steps), on_step=True, on_epoch=False, batch_size=1)

    @override
    def validation_step(self, batch, batch_idx: int) -> None:
        require(batch, self.spec.batch, type(self).__name__)
        out = self.compute_loss(batch)
        metrics = {"val/loss": out.loss, **{f"val/{k}": v for k, v in out.metrics.items()}}
        self.log_dict(metrics, batch_size=len(batch), sync_dist=True, prog_bar=False)

    @override
    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory([p for p in self.policy.parameters() if p.requires_grad])
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ----------------------------------------------------------------- export
    def tokenizer(self):
        """The tokenizer of the data being trained on, else the one that belongs to the model spec."""
        datamodule = self.datamodule()
        if getattr(datamodule, "tokenizer", None) is not None:
            return datamodule.tokenizer
        return None if self.model_spec is None else load_tokenizer(self.model_spec)

    def export(self, directory: str | Path) -> Path:
        """Save the policy (and tokenizer, when known) with ``save_pretrained``; returns the directory. With
        ``peft``: the trainable adapter, which ``peft.AutoPeftModelForCausalLM.from_pretrained(directory)`` reloads
        (its base is the model directory of the spec, or, for "tiny-random" or a model object, the base saved in
        ``directory / "base"``), or with ``merge`` the merged full model."""
        directory = Path(directory)
        if isinstance(self.policy, PeftModel):
            merge = self.hparams.get("merge", False)
            export_lora(self.policy, directory, merge, None if merge else adapter_base(self.model_spec))
        else:
            self.policy.save_pretrained(str(directory))
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
