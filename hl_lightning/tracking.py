"""MLflow glue: put the resolved YAML config into the same MLflow run as the metrics."""

from __future__ import annotations

import os

from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.loggers import MLFlowLogger
from typing_extensions import override


class MLflowSaveConfigCallback(SaveConfigCallback):
    """Saves the resolved config as ``config.yaml`` with every logger: into the MLflow run as an artifact,
    and into the log directory of file-based loggers (CSV, TensorBoard).

    Lightning's own ``SaveConfigCallback`` only writes to ``trainer.log_dir``, which MLflow's database store
    does not have (Lightning-AI/pytorch-lightning#18396). Use with ``save_to_log_dir=False``.
    """

    @override
    def save_config(self, trainer, pl_module, stage: str) -> None:
        config = self.parser.dump(self.config, skip_none=False)
        for logger in trainer.loggers:
            if isinstance(logger, MLFlowLogger):
                logger.experiment.log_text(logger.run_id, config, self.config_filename)
            elif getattr(logger, "log_dir", None):
                os.makedirs(logger.log_dir, exist_ok=True)
                with open(os.path.join(logger.log_dir, self.config_filename), "w") as f:
                    f.write(config)
