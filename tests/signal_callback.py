"""Used by tests/test_signals.py and tests/multinode_script.py: hold training at a known step until the test's signal
has arrived, so a signal sent from outside lands in the same step in every run."""

import time
from pathlib import Path

from lightning.pytorch.callbacks import Callback

from hl_lightning.callbacks import PreemptionCheckpoint


class PauseAt(Callback):
    """Before optimizer step ``step`` (1-based: the step that makes ``global_step == step``), on rank ``rank`` (every
    rank if None), create ``marker.rank<R>`` and wait until ``PreemptionCheckpoint`` has a signal (``timeout``
    seconds at most). The run then stops after that step."""

    def __init__(self, step: int, marker: str, rank: int | None = None, timeout: float = 120.0) -> None:
        self.step, self.marker, self.rank, self.timeout = step, marker, rank, timeout

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step != self.step - 1 or self.rank not in (None, trainer.global_rank):
            return
        (preemption,) = (cb for cb in trainer.callbacks if isinstance(cb, PreemptionCheckpoint))
        Path(f"{self.marker}.rank{trainer.global_rank}").touch()
        deadline = time.monotonic() + self.timeout
        while not (preemption.stop_requested or preemption.requeue_requested) and time.monotonic() < deadline:
            time.sleep(0.05)
