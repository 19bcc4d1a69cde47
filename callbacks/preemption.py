"""Stop cleanly when the run is asked to (SIGTERM, SLURM's requeue signal): save the step reached, then exit, so a
preempted, timed-out or requeued run resumes where it stopped (``fit --ckpt_path last``)."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from types import FrameType

import lightning.pytorch as pl
import torch
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.rank_zero import rank_zero_warn
from typing_extensions import override


class PreemptionCheckpoint(Callback):
    """Save the step reached and stop when the process receives SIGTERM (``kill``, a scheduler preempting the job
    or ending it at its time limit) or, under SLURM with auto-requeue, the requeue signal (``SIGUSR1`` unless
    ``SLURMEnvironment(requeue_signal=...)`` says otherwise); after the requeue signal it also runs ``scontrol
    requeue`` for the job, once the checkpoint is written.

    A signal only sets a flag. At the end of each optimizer step every rank sums the flags of all ranks (one small
    all-reduce; nothing on a single process), so all ranks stop after the same step even when the signal reaches
    them at different moments or reaches only one of them. The step is saved through each ``ModelCheckpoint`` of
    the trainer, as if it were one of its scheduled saves: ``epoch=E-step=S.ckpt`` in its directory, and
    ``last.ckpt`` with ``save_last``. The CLI writes every checkpoint atomically (``AtomicCheckpointIO``). Every
    rank then stops the way Lightning stops on SIGTERM, once the step's metrics are logged: a ``SIGTERMException``,
    exit status 0, the MLflow run marked FAILED until a resumed run continues it. A signal that arrives during a
    rollout takes effect at the end of the step.

    This replaces Lightning's own handlers for these signals while training: they run collective operations inside
    the signal handler (the requeue handler saves ``hpc_ckpt_N.ckpt`` there), which can deadlock when ranks receive
    the signal at different points of a step. Without a ``ModelCheckpoint`` (``trainer.enable_checkpointing:
    false``) the run still stops and requeues, without saving.
    """

    def __init__(self) -> None:
        self.stop_requested = False  # this process received SIGTERM
        self.requeue_requested = False  # this process received SLURM's requeue signal

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Install the flag-setting handlers (Lightning registered its own just before; it restores the originals
        when the run ends)."""
        self.stop_requested = self.requeue_requested = False
        if threading.current_thread() is not threading.main_thread():
            return
        signal.signal(signal.SIGTERM, self._on_sigterm)
        requeue = requeue_signal(trainer)
        if requeue is not None:
            signal.signal(requeue, self._on_requeue_signal)

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        self.stop_requested = True

    def _on_requeue_signal(self, signum: int, frame: FrameType | None) -> None:
        self.requeue_requested = True

    @override
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx) -> None:
        if (batch_idx + 1) % trainer.accumulate_grad_batches:
            return  # mid-accumulation: stop only where an optimizer step has completed
        flags = torch.tensor([self.stop_requested, self.requeue_requested], dtype=torch.float32)
        summed = trainer.strategy.reduce(flags.to(trainer.strategy.root_device), reduce_op="sum")  # every rank's flags
        stop, requeue = (bool(v > 0) for v in summed.tolist())
        if not (stop or requeue):
            return
        save_step(trainer, pl_module)
        if requeue and trainer.is_global_zero:
            requeue_slurm_job()
        trainer._signal_connector.received_sigterm = True  # every rank: Lightning stops once the step is logged

    @override
    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        """Lightning's own SIGTERM stop (before training started, or outside the main thread): save too."""
        if isinstance(exception, SIGTERMException):
            save_step(trainer, pl_module)


def save_step(trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
    """Save the current step through each ``ModelCheckpoint`` (its own exception save, which skips a step it
    already saved)."""
    for checkpoint in trainer.checkpoint_callbacks:
        if not isinstance(checkpoint, ModelCheckpoint):
            continue
        on_exception = checkpoint.save_on_exception
        checkpoint.save_on_exception = True
        try:
            checkpoint.on_exception(trainer, pl_module, SIGTERMException())
        finally:
            checkpoint.save_on_exception = on_exception


def requeue_signal(trainer: pl.Trainer) -> signal.Signals | None:
    """The signal SLURM sends before the time limit, when the run is on SLURM with auto-requeue on."""
    environment = trainer._accelerator_connector.cluster_environment  # the environment Lightning's signals use
    if isinstance(environment, SLURMEnvironment) and environment.auto_requeue:
        return environment.requeue_signal
    return None


def requeue_slurm_job() -> None:
    """``scontrol requeue`` this SLURM job (``JOBID_TASKID`` for an array task); a failure is a warning."""
    array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    job = f"{array_job}_{os.environ['SLURM_ARRAY_TASK_ID']}" if array_job else os.environ["SLURM_JOB_ID"]
    try:
        status = subprocess.run(["scontrol", "requeue", job], check=False).returncode
    except FileNotFoundError:
        status = None
    if status != 0:
        rank_zero_warn(
            f"scontrol requeue {job} failed ({'no scontrol on PATH' if status is None else f'exit status {status}'}):"
            " the job will not restart by itself; submit it again to resume from last.ckpt (--ckpt_path last)."
        )
