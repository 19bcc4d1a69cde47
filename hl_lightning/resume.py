"""Resuming a CLI run: which options may change, where ``last`` is, and logging into the same MLflow run."""

from __future__ import annotations

import importlib
from pathlib import Path

import torch
from lightning.fabric.utilities.logger import _convert_params, _flatten_dict
from lightning.pytorch.loggers import MLFlowLogger

from hl_lightning.checkpointing import checkpoint_run_id

RESUME_SAFE = ("export_dir", "max_consecutive_skips")  # model options a resumed run may change


def find_last_checkpoint(root: str | Path) -> Path:
    """The newest ``last*.ckpt`` under ``root`` (``trainer.default_root_dir``), for ``--ckpt_path last``."""
    candidates = sorted(Path(root).rglob("last*.ckpt"), key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise ValueError(
            f"--ckpt_path last: no last.ckpt under {Path(root).resolve()} (trainer.default_root_dir). "
            "Train with a ModelCheckpoint(save_last=true) callback (the shipped configs have one), or "
            "pass the checkpoint's path."
        )
    return candidates[-1]


def _canonical(class_path: str) -> str:
    """``module.Class`` where the class is defined (``hl_lightning.objectives.ClipLogRatio`` and
    ``hl_lightning.objectives.logratio.ClipLogRatio`` are one class)."""
    module, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return class_path
    return f"{cls.__module__}.{cls.__qualname__}"


def _plain(value):
    """A config value as plain data, a ``class_path`` entry as ``{"class_path", "init_args"}`` (as saved)."""
    value = value.as_dict() if hasattr(value, "as_dict") else value
    if isinstance(value, dict) and "class_path" in value:
        return {"class_path": _canonical(value["class_path"]), "init_args": value.get("init_args") or {}}
    return value


def changed_options(config, hparams: dict) -> list[str]:
    """``model.init_args.<key>: checkpoint X, now Y`` for every saved model option that differs (``RESUME_SAFE``
    excepted), and the objective class when it differs."""
    model = config.model
    problems = []
    saved_class = hparams.get("_class_path")
    if saved_class and _canonical(saved_class) != _canonical(model.class_path):
        problems.append(f"model.class_path: checkpoint {saved_class}, now {model.class_path}")
    current = model.init_args.as_dict() if hasattr(model.init_args, "as_dict") else dict(model.init_args)
    for key, saved in hparams.items():
        if key.startswith("_") or key in RESUME_SAFE or key not in current:
            continue
        now, saved = _plain(current[key]), _plain(saved)
        if now != saved and not (isinstance(now, float | int) and isinstance(saved, float | int) and now == saved):
            problems.append(f"model.init_args.{key}: checkpoint {saved!r}, now {now!r}")
    return problems


def check_resume_options(config, path: Path | None) -> None:
    """Refuse ``fit --ckpt_path`` with model options that differ from the checkpoint's (see :func:`changed_options`)."""
    if path is None:
        return
    if not path.is_file():
        raise ValueError(f"--ckpt_path {path}: no such checkpoint file.")
    hparams = torch.load(path, map_location="cpu", weights_only=True, mmap=True).get("hyper_parameters", {})
    problems = changed_options(config[config.subcommand], hparams)
    if problems:
        raise ValueError(
            f"Cannot resume from {path} with changed options: {'; '.join(problems)}. These must equal the "
            "checkpoint's: resume with the original config (or start a new run). Safe to change on resume: "
            f"{', '.join(RESUME_SAFE)} and every trainer option (max_steps, logger, callbacks)."
        )


def resume_logging(trainer, path: Path) -> None:
    """Point the MLflow loggers at the checkpoint's run (metrics continue in it, marked RUNNING again); a param
    that now has another value (e.g. ``export_dir``) is recorded as a ``resumed.<param>`` tag instead."""
    run_id = checkpoint_run_id(path)
    for logger in trainer.loggers:
        if not isinstance(logger, MLFlowLogger) or run_id is None:
            continue
        logger._run_id = run_id
        logger.experiment.update_run(run_id, status="RUNNING")
        # this logger only: replace its bound method
        logger.log_hyperparams = _only_new_params(logger, logger.log_hyperparams)  # type: ignore[method-assign]


def _only_new_params(logger: MLFlowLogger, log_params):
    """``log_hyperparams`` that logs only params the run does not have yet (MLflow refuses to change one) and
    records a changed value as a ``resumed.<param>`` tag."""

    def log_new(params) -> None:
        flat = _flatten_dict(_convert_params(params))
        old = logger.experiment.get_run(logger.run_id).data.params
        for key, value in flat.items():
            if key in old and not str(value).startswith(old[key]):
                logger.experiment.set_tag(logger.run_id, f"resumed.{key}", str(value)[:5000])
        log_params({k: v for k, v in flat.items() if k not in old})

    return log_new
