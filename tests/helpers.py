"""Small training harness for tests: a DPO module on a tiny random Llama, fitted on synthetic batches."""

from __future__ import annotations

from functools import partial

import lightning.pytorch as pl
import torch
from peft import LoraConfig
from torch.utils.data import DataLoader

from hl_lightning.modules import DPOModule
from hl_lightning.objectives import ClipLogRatio


def flat(module: torch.nn.Module) -> torch.Tensor:
    """All parameters of a module as one detached vector (a snapshot)."""
    return torch.cat([p.detach().flatten().clone() for p in module.parameters()])


def adapter_flat(module, name: str) -> torch.Tensor:
    """The weights of LoRA adapter ``name`` ("default" = trainable, "reference") of ``module.policy``."""
    return torch.cat([p.detach().flatten().clone() for n, p in module.policy.named_parameters() if f".{name}." in n])


def policy_flat(module) -> torch.Tensor:
    """What trains: every policy weight, or with LoRA the trainable adapter."""
    return flat(module.policy) if module.adapters is None else adapter_flat(module, "default")


def reference_flat(module) -> torch.Tensor:
    """What the reference holds, comparable with :func:`policy_flat`: the copy's weights, or the reference adapter."""
    return flat(module.ref) if module.adapters is None else adapter_flat(module, "reference")


class WeightRecorder(pl.Callback):
    """Snapshots policy and reference weights (with LoRA: the two adapters) at the start of each optimizer step
    (before its forward)."""

    def __init__(self) -> None:
        self.policy: list[torch.Tensor] = []
        self.ref: list[torch.Tensor] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx % trainer.accumulate_grad_batches == 0:
            self.policy.append(policy_flat(pl_module))
            self.ref.append(reference_flat(pl_module))


LORA = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0)


def tiny_dpo(clip: bool = True, lr: float = 1e-3, **kwargs) -> DPOModule:
    """A DPO module on the tiny random Llama with a large enough LR that every step moves the weights."""
    return DPOModule(
        model="tiny-random",
        clip=ClipLogRatio() if clip else None,
        optimizer=partial(torch.optim.AdamW, lr=lr),
        **kwargs,
    )


def trainer(max_steps: int, callbacks: list, root, **kwargs) -> pl.Trainer:
    """A quiet CPU trainer."""
    options = dict(
        accelerator="cpu",
        devices=1,
        max_steps=max_steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
        default_root_dir=root,
        num_sanity_val_steps=0,
    )
    return pl.Trainer(**{**options, **kwargs})


def loader(batches: list[dict]) -> DataLoader:
    """Serve pre-built batches in order."""
    return DataLoader(batches, batch_size=None, shuffle=False)
