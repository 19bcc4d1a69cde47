"""``hl-lightning``: the LightningCLI entry point (``hl-lightning fit --config configs/humanline/dpo.yaml``), plus
``hl-lightning reproduce --plan ...`` (a sweep of fit runs, ``hl_lightning.reproduce``), ``hl-lightning configs
list|copy`` (the shipped configs, ``hl_lightning.configs_catalog``) and ``hl-lightning data-quality --model M --data
FILE`` (how far offline data is from the model, ``hl_lightning.data_quality``).

A ``--config`` file may build on others with ``extends:`` (``hl_lightning.configs_compose``); it is composed before
LightningCLI parses it.

Bad options and data print one message and exit with status 2 (``HL_LIGHTNING_DEBUG=1`` or ``--debug``
shows the full traceback). ``fit --ckpt_path PATH|last`` resumes exactly, into the same MLflow run; options
that are safe to change on resume (``RESUME_SAFE`` of the model, and every trainer option such as
``max_steps`` or the logger) take the command line's value, the others must equal the checkpoint's.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
import warnings
from pathlib import Path

import lightning_utilities.core.rank_zero as rank_zero_module
from lightning.pytorch import LightningDataModule
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import MLFlowLogger
from lightning.pytorch.plugins.io import TorchCheckpointIO

import hl_lightning
import hl_lightning.callbacks
from hl_lightning.checkpointing import AtomicCheckpointIO
from hl_lightning.cli_errors import OneLineErrorParser
from hl_lightning.configs_compose import compose_args
from hl_lightning.modules.base import AlignmentModule
from hl_lightning.resume import check_resume_options, find_last_checkpoint, resume_logging
from hl_lightning.tracking import MLflowSaveConfigCallback, mark_failed

DEBUG_ENV = "HL_LIGHTNING_DEBUG"
_RANK_ZERO_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")  # rank_zero_info
_ADVERTS = ("pypi.org/project/litlogger", "pypi.org/project/litmodels")  # Lightning's tips to install its cloud
_USER_ERRORS = (ValueError, TypeError, RuntimeError)
_OURS = tuple(str(Path(str(package.__file__)).resolve().parent) for package in (hl_lightning, hl_lightning.callbacks))


class HLLightningCLI(LightningCLI):
    """LightningCLI whose data tokenizer follows the model, whose checkpoints are atomic and resume into the same
    MLflow run, and which says where results went."""

    def __init__(self, *args, composed: list[str] | None = None, **kwargs) -> None:
        self.composed = composed or []  # the --config files given composed (as YAML text): named in the run's config
        super().__init__(*args, **kwargs)

    def parse_arguments(self, parser, args) -> None:
        """Parse; a composed ``--config`` keeps its file name in the parsed ``config`` entry, as a plain one does."""
        super().parse_arguments(parser, args)
        sub = self.config.get("subcommand")
        node = self.config[sub] if sub else self.config
        files = iter(self.composed)
        if node.get("config"):
            node.config = [next(files, None) if given is None else given for given in node.config]

    def add_arguments_to_parser(self, parser) -> None:
        """Link the data module's tokenizer to the model spec, so one ``--model.model`` changes both."""
        parser.link_arguments("model.init_args.model", "data.init_args.tokenizer")

    def _parse_ckpt_path(self) -> None:
        """Keep the command line's options on resume (Lightning's would replace them with the checkpoint's); refuse
        a resume that changes what cannot change (objective, model, clip, loss options)."""
        check_resume_options(self.config, self._resolved_ckpt_path())

    def _resolved_ckpt_path(self) -> Path | None:
        sub = self.config.get("subcommand")
        path = self.config[sub].get("ckpt_path") if sub else None
        if path == "last":
            return find_last_checkpoint(self.config[sub].trainer.default_root_dir or ".")
        return Path(path) if path else None

    def instantiate_trainer(self, **kwargs):
        """The trainer, with atomic checkpoint writes unless another CheckpointIO was configured."""
        trainer = super().instantiate_trainer(**kwargs)
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        return trainer

    def before_fit(self) -> None:
        """Drop LightningCLI's ``_instantiator`` hparam (noise in MLflow; our modules reload without it); on resume,
        log into the checkpoint's MLflow run (and let ``--ckpt_path last`` find it)."""
        for component in (self.model, self.datamodule):
            for hparams in (component.hparams, getattr(component, "_hparams_initial", {})):
                hparams.pop("_instantiator", None)
        path = self._resolved_ckpt_path()
        if path is not None:
            self.config[self.subcommand].ckpt_path = str(path)
            resume_logging(self.trainer, path)

    def _run_subcommand(self, subcommand: str) -> None:
        try:
            super()._run_subcommand(subcommand)
        except BaseException as err:
            mark_failed(self.trainer, err)
            raise

    def after_fit(self) -> None:
        """Print where the model and the run went, and how to look at them."""
        if not self.trainer.is_global_zero:
            return
        lines = ["", "Training finished."]
        if getattr(self.model, "export_dir", None):
            lines.append(f"  Trained policy (save_pretrained): {os.path.abspath(self.model.export_dir)}")
        for logger in self.trainer.loggers:
            if isinstance(logger, MLFlowLogger):
                lines += mlflow_lines(logger)
        print("\n".join(lines))


def mlflow_lines(logger: MLFlowLogger) -> list[str]:
    """Where the run is and the command that shows it, valid from any directory: a local store (``sqlite:///``,
    ``file:``, a folder) by its absolute path with the ``mlflow`` command (on PATH where hl-lightning is installed);
    a tracking server by the run's page."""
    uri, run = logger._tracking_uri or "", f"#/experiments/{logger.experiment_id}/runs/{logger.run_id}"
    lines = [f"  MLflow run {logger.run_id} in experiment '{logger._experiment_name}'"]
    if uri.startswith(("http://", "https://", "databricks")):
        return [*lines, f"  Open it: {uri.rstrip('/')}/{run}"]
    scheme, sep, path = uri.rpartition(":///") if uri.startswith("sqlite:") else uri.rpartition("file:")
    store = f"{scheme}{sep}{os.path.abspath(path)}"
    lines.append(f"  Open it: mlflow ui --backend-store-uri {store}   then http://127.0.0.1:5000/{run}")
    return lines


class _NoAdverts(logging.Filter):
    """Drops Lightning's tips to install litlogger / litmodels (printed at every fit, with no switch to turn
    them off: ``lightning.pytorch.trainer.connectors``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(advert in record.getMessage() for advert in _ADVERTS)


def quiet_lightning() -> None:
    """Keep what a run prints to what it says about the run: no cloud-product tips, and not the deprecation
    warning that Lightning's own ``_pytree`` helper triggers in torch (its code, not the user's, to change)."""
    for logger in {logging.getLogger(name) for name in _RANK_ZERO_LOGGERS} | {rank_zero_module.log}:
        if not any(isinstance(f, _NoAdverts) for f in logger.filters):
            logger.addFilter(_NoAdverts())
    warnings.filterwarnings(
        "ignore",
        message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
        category=FutureWarning,
        module=r"lightning\.pytorch\.utilities\._pytree",
    )


def build_cli(args: list[str] | None = None, run: bool = True, debug: bool = False) -> HLLightningCLI:
    """Parse ``args`` (``None`` reads ``sys.argv``), build the trainer, module and data, and run the subcommand
    unless ``run=False``. Every ``--config`` file with ``extends`` is composed first; a config mistake is one line
    (``hl_lightning.cli_errors``) unless ``debug``. Options are spelled in full (no abbreviations: a typo such as
    ``--trainer.max_step`` is an error, not ``max_steps``). Returns the CLI object (tests inspect it)."""
    quiet_lightning()
    composed: list[str] = []
    if args is None:
        sys.argv[1:] = compose_args(sys.argv[1:], composed)
    elif isinstance(args, list):
        args = compose_args(args, composed)
    return HLLightningCLI(
        AlignmentModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_callback=MLflowSaveConfigCallback,
        save_config_kwargs={"overwrite": True, "save_to_log_dir": False},
        parser_kwargs={"default_env": False, "allow_abbrev": False},
        parser_class=LightningArgumentParser if debug else OneLineErrorParser,
        auto_configure_optimizers=False,
        args=args,
        run=run,
        composed=composed,
    )


def user_error(err: BaseException) -> BaseException | None:
    """The exception of ours behind ``err`` (its message is meant for users), or None for a bug elsewhere."""
    seen = set()
    link: BaseException | None = err
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        frames = traceback.extract_tb(link.__traceback__)
        if isinstance(link, _USER_ERRORS) and frames and frames[-1].filename.startswith(_OURS):
            return link
        link = link.__cause__ or link.__context__
    return None


def _origin(err: BaseException) -> str:
    """``ClassName: `` of the object whose constructor raised, when it did."""
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    owner = tb.tb_frame.f_locals.get("self") if tb is not None and tb.tb_frame.f_code.co_name == "__init__" else None
    return f"{type(owner).__name__}: " if owner is not None else ""


def main(args: list[str] | None = None) -> None:
    """Console-script entry point (``hl-lightning``): exit status 0 on success, 2 with one message for bad input."""
    given = sys.argv[1:] if args is None else args
    debug = "--debug" in given or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    if args is None:
        sys.argv = [a for a in sys.argv if a != "--debug"]  # LightningCLI reads sys.argv itself
    else:
        args = [a for a in args if a != "--debug"]
    command = [a for a in (given or []) if a != "--debug"]
    try:
        if command[:1] == ["reproduce"]:  # a sweep of fit runs (hl_lightning.reproduce), not a LightningCLI command
            from hl_lightning.reproduce import main as reproduce

            return reproduce(command[1:])
        if command[:1] == ["configs"]:  # the shipped configs: list, copy (hl_lightning.configs_catalog)
            from hl_lightning.configs_catalog import main as configs

            return configs(command[1:])
        if command[:1] == ["data-quality"]:  # the offline data against the model (hl_lightning.data_quality)
            from hl_lightning.data_quality import main as data_quality

            return data_quality(command[1:])
        build_cli(args, debug=debug)
    except BaseException as err:
        ours = None if debug or isinstance(err, SystemExit | KeyboardInterrupt) else user_error(err)
        if ours is None:
            raise
        sys.stderr.write(f"error: {_origin(ours)}{ours}\n(full traceback: {DEBUG_ENV}=1 or --debug)\n")
        raise SystemExit(2) from None
