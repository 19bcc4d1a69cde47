"""Tables of what the model wrote (prompts, completions, scores) in the MLflow run, for reading in its UI.

A table is one JSON artifact of the run (MLflow's ``log_table``); logging to it again appends rows, so one file
holds a run's whole series, with a ``step`` column to tell the points apart. The MLflow UI shows it under the
run's Artifacts and in the experiment's "Artifact evaluation" view (docs/tracking.md).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.loggers import MLFlowLogger

QUIET = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
MAX_CHARS = 500  # longer prompts and completions are cut to this many characters (and end with "...")
ONLINE_SAMPLES = "tables/online_samples.json"  # hl_lightning.online.OnlineDataModule: each logged round's samples
HELDOUT_ANSWERS = "tables/heldout_answers.json"  # hl_lightning.callbacks.HeldOutEval: every scoring's answers


def log_table(
    trainer: pl.Trainer, rows: Sequence[dict[str, Any]], artifact_file: str, max_rows: int, **same: Any
) -> int:
    """Append the first ``max_rows`` of ``rows`` (dicts with the same keys), each with the columns ``same`` in front
    (``step=12``), to the table ``artifact_file`` of the trainer's MLflow run; chat prompts become text, text is
    cut to ``MAX_CHARS``. Nothing without an ``MLFlowLogger``, off rank zero, or with ``max_rows < 1``. Returns the
    rows logged."""
    logger = next((lg for lg in trainer.loggers if isinstance(lg, MLFlowLogger)), None)
    kept = [{**same, **row} for row in rows[: max(max_rows, 0)]]
    if logger is None or not trainer.is_global_zero or not kept:
        return 0
    columns = {key: [_cell(row[key]) for row in kept] for key in kept[0]}
    with _no_download_bar():
        logger.experiment.log_table(run_id=logger.run_id, data=columns, artifact_file=artifact_file)
    return len(kept)


@contextlib.contextmanager
def _no_download_bar() -> Iterator[None]:
    """Appending to a table downloads it first; MLflow would draw a progress bar for that on every call."""
    before = os.environ.get(QUIET)
    os.environ[QUIET] = "false"
    try:
        yield
    finally:
        if before is None:
            del os.environ[QUIET]
        else:
            os.environ[QUIET] = before


def _cell(value: Any) -> Any:
    """A table cell: chat messages as ``role: content`` lines, text cut to ``MAX_CHARS``."""
    if isinstance(value, list) and all(isinstance(m, dict) for m in value):
        value = "\n".join(f"{m.get('role', '')}: {m.get('content', '')}" for m in value)
    if isinstance(value, str) and len(value) > MAX_CHARS:
        return value[: MAX_CHARS - 3] + "..."
    return value
