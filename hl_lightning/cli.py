"""``hl-lightning``: the LightningCLI entry point (``hl-lightning fit --config configs/humanline/dpo.yaml``)."""

from __future__ import annotations

import os

from lightning.pytorch import LightningDataModule
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.loggers import MLFlowLogger

from hl_lightning.modules.base import AlignmentModule
from hl_lightning.tracking import MLflowSaveConfigCallback


class HLLightningCLI(LightningCLI):
    """LightningCLI whose data tokenizer follows the model, and which says where results went."""

    def add_arguments_to_parser(self, parser) -> None:
        """Link the data module's tokenizer to the model spec, so one ``--model.model`` changes both."""
        parser.link_arguments("model.init_args.model", "data.init_args.tokenizer")

    def after_fit(self) -> None:
        """Print where the model and the run went, and how to look at them."""
        if not self.trainer.is_global_zero:
            return
        module = self.model
        lines = ["", "Training finished."]
        if getattr(module, "export_dir", None):
            lines.append(f"  Trained policy (save_pretrained): {os.path.abspath(module.export_dir)}")
        for logger in self.trainer.loggers:
            if isinstance(logger, MLFlowLogger):
                uri = logger._tracking_uri
                lines.append(f"  MLflow run {logger.run_id} in experiment '{logger._experiment_name}' ({uri})")
                lines.append(f"  Open the UI:  .venv/bin/mlflow ui --backend-store-uri {uri}  (http://127.0.0.1:5000)")
        print("\n".join(lines))


def build_cli(args: list[str] | None = None, run: bool = True) -> HLLightningCLI:
    """Parse ``args`` (``None`` reads ``sys.argv``), build the trainer, module and data, and run the subcommand
    unless ``run=False``. Returns the CLI object (tests inspect it)."""
    return HLLightningCLI(
        AlignmentModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_callback=MLflowSaveConfigCallback,
        save_config_kwargs={"overwrite": True, "save_to_log_dir": False},
        parser_kwargs={"default_env": False},
        auto_configure_optimizers=False,
        args=args,
        run=run,
    )


def main(args: list[str] | None = None) -> None:
    """Console-script entry point (``hl-lightning``): returns None so the process exits with status 0."""
    build_cli(args)
