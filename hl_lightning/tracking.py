"""MLflow glue: the resolved YAML, every effective hyperparameter and filterable tags in the run of the metrics."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.loggers import MLFlowLogger
from typing_extensions import override

_MAX_VALUE = 500  # MLflow's limit on a param value


def flatten(value, prefix: str = "") -> dict[str, str]:
    """``{"a.b": "1", ...}`` of a nested config; a list of ``class_path`` entries is keyed by class name."""
    items: Iterable[tuple[Any, Any]]
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list) and all(isinstance(v, dict) and "class_path" in v for v in value):
        items = ((v["class_path"].rsplit(".", 1)[-1], v.get("init_args", {})) for v in value)
    else:
        return {prefix: str(value)[:_MAX_VALUE]} if prefix else {}
    out: dict[str, str] = {}
    for key, inner in items:
        out.update(flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
    return out


def versions() -> dict[str, str]:
    """The versions of the packages a result depends on."""
    out = {}
    for package in ("torch", "transformers", "lightning", "hl-lightning", "peft", "mlflow"):
        try:
            out[f"version.{package}"] = version(package)
        except PackageNotFoundError:
            continue
    return out


def git_commit() -> str | None:
    """The commit of the checkout this package runs from (with ``+dirty`` when it has changes), or None."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "") if commit else None


def run_tags(trainer, module) -> dict[str, str]:
    """Tags the MLflow UI can filter on: objective, data mode, humanline parts, versions and the git commit."""
    from hl_lightning.callbacks import RefSyncCallback

    clip = getattr(module, "clip", None)
    syncs = [cb.every_n_steps for cb in trainer.callbacks if isinstance(cb, RefSyncCallback)]
    datamodule = trainer.datamodule
    online = type(datamodule).__name__ == "OnlineDataModule"
    tags = {
        "objective": type(module).__name__,
        "data_mode": "online" if online else "offline",
        "humanline.clip": "none" if clip is None else clip.describe(),
        "humanline.sync_k": str(syncs[0]) if syncs else "none",
        "online.sample_every_n_steps": str(datamodule.hparams.sample_every_n_steps) if online else "none",
        **versions(),
    }
    if (commit := git_commit()) is not None:
        tags["git_commit"] = commit
    return tags


class MLflowSaveConfigCallback(SaveConfigCallback):
    """Puts the resolved config into the MLflow run: ``config.yaml`` as an artifact, every effective option as
    a flat param (``trainer.max_steps``, ``model.init_args.optimizer.init_args.lr``, ...) and filterable tags
    (:func:`run_tags`: ``objective``, ``data_mode``, ``humanline.clip``, ``humanline.sync_k``, versions,
    ``git_commit``); for file-based loggers (CSV, TensorBoard) the YAML goes into their log directory.

    Lightning's own ``SaveConfigCallback`` only writes to ``trainer.log_dir``, which MLflow's database store
    does not have (Lightning-AI/pytorch-lightning#18396). Use with ``save_to_log_dir=False``.
    """

    @override
    def save_config(self, trainer, pl_module, stage: str) -> None:
        config = self.parser.dump(self.config, skip_none=False)
        params = {k: v for k, v in flatten(self.config.as_dict()).items() if not k.startswith("trainer.logger")}
        for logger in trainer.loggers:
            if isinstance(logger, MLFlowLogger):
                logger.experiment.log_text(logger.run_id, config, self.config_filename)
                logger.log_hyperparams(params)
                for key, value in run_tags(trainer, pl_module).items():
                    logger.experiment.set_tag(logger.run_id, key, value)
            elif getattr(logger, "log_dir", None):
                os.makedirs(logger.log_dir, exist_ok=True)
                with open(os.path.join(logger.log_dir, self.config_filename), "w") as f:
                    f.write(config)


def mark_failed(trainer, err: BaseException) -> None:
    """Tag the MLflow run of a run that failed with the error (Lightning marks it FAILED), if it was created."""
    for logger in getattr(trainer, "loggers", []):
        if isinstance(logger, MLFlowLogger) and logger._run_id is not None:
            logger.experiment.set_tag(logger.run_id, "error", f"{type(err).__name__}: {err}"[:5000])
            logger.experiment.set_terminated(logger.run_id, "FAILED")
