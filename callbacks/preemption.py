"""A checkpoint when the run is asked to stop (SIGTERM), so a preempted or requeued run resumes where it stopped."""

from __future__ import annotations

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException
from typing_extensions import override


class CheckpointOnSigterm(Callback):
    """Save the step reached when the process receives SIGTERM (``kill``, a scheduler preempting the job or ending
    it at its time limit, SLURM requeueing it).

    On SIGTERM, Lightning finishes the batch in progress and stops every rank with a ``SIGTERMException``; this
    callback then saves that step through each ``ModelCheckpoint`` of the trainer, as if it were one of its
    scheduled saves: ``epoch=E-step=S.ckpt`` in its directory, and ``last.ckpt`` when it has ``save_last``. The
    CLI writes every checkpoint atomically (``AtomicCheckpointIO``): a kill during the save leaves the previous one
    intact. ``fit --ckpt_path last`` then resumes exactly from the step reached.

    Nothing is saved without a ``ModelCheckpoint`` (``trainer.enable_checkpointing: false``), when that step is
    already saved, or for any other exception: an error can stop a step half-way, and such a state must not become
    ``last``. All ranks must be stopping together (Lightning's SIGTERM handling shares rank 0's signal with every
    rank before each batch), since saving is collective.
    """

    @override
    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, SIGTERMException):
            return
        for checkpoint in trainer.checkpoint_callbacks:
            if not isinstance(checkpoint, ModelCheckpoint) or checkpoint.save_on_exception:
                continue  # one that saves on every exception does so by itself
            checkpoint.save_on_exception = True  # ModelCheckpoint's own exception save, for this exception only
            try:
                checkpoint.on_exception(trainer, pl_module, exception)
            finally:
                checkpoint.save_on_exception = False
