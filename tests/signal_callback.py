"""Used by tests/test_signals.py and tests/multinode_script.py: hold training at a known step until the test's signal
has been handled, so a signal sent from outside lands at the same step in every run."""

import time
from pathlib import Path

from lightning.pytorch.callbacks import Callback


class PauseAt(Callback):
    """At the end of optimizer step ``step`` (1-based: after ``step`` updates), create ``marker`` (with the rank in
    its name) and wait until Lightning has seen a SIGTERM (``trainer.received_sigterm``), for ``timeout`` seconds
    at most."""

    def __init__(self, step: int, marker: str, timeout: float = 120.0) -> None:
        self.step, self.marker, self.timeout = step, marker, timeout

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step != self.step:
            return
        Path(f"{self.marker}.rank{trainer.global_rank}").touch()
        deadline = time.monotonic() + self.timeout
        while not trainer.received_sigterm and time.monotonic() < deadline:
            time.sleep(0.05)
