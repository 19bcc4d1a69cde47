"""Crash-safe checkpoints: written atomically, and resumable into the same MLflow run.

A Lightning checkpoint (``.ckpt``) is a pickle written by ``torch.save``: the policy and reference weights,
the optimizer and LR-scheduler states, the loop counters, every callback's state (``RefSyncCallback``'s sync
count), the data module's position (mid-epoch offline; prompt stream, rollout count and the rest of the
current round online), the module's hyperparameters and the MLflow run id. Load checkpoints only from
sources you trust; ``load_from_checkpoint`` here needs no code beyond tensors and plain values.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from typing_extensions import override

RUN_ID_KEY = "hl_lightning_mlflow_run_id"
CLIP_STATE_KEY = "hl_lightning_clip_state"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file in the same directory, flushes it to disk and renames it over
    the target (``os.replace``), so a process killed while saving leaves the previous checkpoint intact and
    never a truncated one. The CLI installs it; in your own code pass ``plugins=[AtomicCheckpointIO()]``."""

    @override
    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO.save_checkpoint takes no storage_options.")
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        try:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)


def checkpoint_run_id(path: str | Path) -> str | None:
    """The MLflow run id saved in a checkpoint (``AlignmentModule.on_save_checkpoint``), or None."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    return checkpoint.get(RUN_ID_KEY)
