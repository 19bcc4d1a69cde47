"""Early, explicit errors for online mode: bad options at construction, a mismatched model or trainer at setup."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from hl_lightning.data.handover import ModelHandle
from hl_lightning.models.engines import SamplingConfig
from hl_lightning.online.builders import Builder


def check_options(on_starved: str, **positive: int) -> None:
    """Raise ``ValueError`` for an unknown ``on_starved`` or any of ``positive`` (name=value) below 1."""
    for name, value in positive.items():
        if value < 1:
            raise ValueError(f"OnlineDataModule({name}={value}): {name} must be >= 1.")
    if on_starved not in ("train", "error"):
        raise ValueError(f"OnlineDataModule(on_starved={on_starved!r}): choose 'train' or 'error'.")


def check_sampling(sampling: SamplingConfig, where: str) -> SamplingConfig:
    """``sampling`` if it draws different completions of a prompt to compare (``num_generations >= 2``,
    ``temperature > 0``), else a one-line ``ValueError`` naming ``where``."""
    if sampling.num_generations < 2:
        raise ValueError(
            f"{where}: num_generations={sampling.num_generations} must be >= 2 (pairs and groups need two)."
        )
    if not sampling.temperature > 0:
        raise ValueError(
            f"{where}: Need temperature > 0 to sample (0 decodes greedily: every completion of a prompt would be the "
            f"same); got temperature={sampling.temperature}."
        )
    return sampling


def check_table(every_n_rounds: int | None, rows: int) -> tuple[int | None, int]:
    """The MLflow sample-table options as given, or a one-line ``ValueError`` naming the wrong one."""
    if every_n_rounds is not None and every_n_rounds < 1:
        raise ValueError(
            f"OnlineDataModule(table_every_n_rounds={every_n_rounds}): must be >= 1, or null for no table."
        )
    if rows < 0:
        raise ValueError(f"OnlineDataModule(table_rows={rows}): must be >= 0 (0: no table).")
    return every_n_rounds, rows


@dataclass(frozen=True)
class OnlineOptions:
    """The options of ``OnlineDataModule`` that choose its prompts and shape its rounds (documented there),
    checked when made."""

    prompts: str
    val_path: str | None
    val_fraction: float
    tokenizer: str | None
    columns: dict[str, str | None] | None
    sample_every_n_steps: int
    prompts_per_step: int
    seed: int
    max_prompt_length: int
    reset_reference_each_round: bool
    max_rollouts_per_round: int
    on_starved: str
    skip_invalid: bool

    def __post_init__(self) -> None:
        check_options(
            self.on_starved,
            sample_every_n_steps=self.sample_every_n_steps,
            prompts_per_step=self.prompts_per_step,
            max_rollouts_per_round=self.max_rollouts_per_round,
            max_prompt_length=self.max_prompt_length,
        )

    @classmethod
    def of(cls, hparams: Mapping[str, Any]) -> OnlineOptions:
        """The options among a data module's saved hyperparameters."""
        return cls(**{field.name: hparams[field.name] for field in fields(cls)})


def check_trainer(trainer, prompts_per_step: int = 1) -> None:
    """``max_steps`` must be set, and a step's micro-batches must each get a prompt."""
    if trainer.max_steps is None or trainer.max_steps < 0:
        raise ValueError("Online mode samples without end: set trainer.max_steps to say when to stop.")
    if prompts_per_step < trainer.accumulate_grad_batches:
        raise ValueError(
            f"OnlineDataModule(prompts_per_step={prompts_per_step}) cannot fill the "
            f"{trainer.accumulate_grad_batches} micro-batches of a step (accumulate_grad_batches): every "
            "micro-batch needs at least one prompt's pair, items or group. Set prompts_per_step >= "
            f"{trainer.accumulate_grad_batches}."
        )


def check_model(model: ModelHandle, builder: Builder | None) -> Builder:
    """The builder to use: ``builder`` or the default of the model's spec, checked against the model, which must
    not serve cached reference log-probs."""
    if model.cached_ref_logps:
        raise ValueError(
            "cache_ref_logps=true cannot be used online: every batch is new data, so the cache would "
            "never hit and only grow. Set cache_ref_logps=false."
        )
    return model.spec.check_builder(builder or model.spec.builder(), model.name)
