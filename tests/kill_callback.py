"""Used by tests/test_crash_resume.py: a callback that kills its own process (SIGKILL, no cleanup at all)."""

import os
import signal

from lightning.pytorch.callbacks import Callback


class KillAt(Callback):
    """``kill -9`` this process at the end of optimizer step ``step`` (1-based: after ``step`` updates)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)
