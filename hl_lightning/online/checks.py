"""Early, explicit errors for online mode: bad options at construction, a mismatched model or trainer at setup."""

from __future__ import annotations

from hl_lightning.online.builders import Builder


def check_options(on_starved: str, **positive: int) -> None:
    """Raise ``ValueError`` for an unknown ``on_starved`` or any of ``positive`` (name=value) below 1."""
    for name, value in positive.items():
        if value < 1:
            raise ValueError(f"OnlineDataModule({name}={value}): {name} must be >= 1.")
    if on_starved not in ("train", "error"):
        raise ValueError(f"OnlineDataModule(on_starved={on_starved!r}): choose 'train' or 'error'.")


def check_trainer(trainer, builder: Builder | None, prompts_per_step: int = 1) -> Builder:
    """The builder to use: ``builder`` or the default of the model's spec, checked against the model; the model
    must be an hl_lightning objective module without reference caching, and ``max_steps`` must be set."""
    module = trainer.lightning_module
    spec = getattr(module, "spec", None)
    if spec is None:
        raise TypeError(
            f"OnlineDataModule builds batches for an hl_lightning objective module (DPOModule, KTOModule, "
            f"GRPOModule, ...), but the model is {type(module).__name__}."
        )
    if getattr(module, "serves_cached_ref_logps", False):
        raise ValueError(
            "cache_ref_logps=true cannot be used online: every batch is new data, so the cache would "
            "never hit and only grow. Set cache_ref_logps=false."
        )
    if trainer.max_steps is None or trainer.max_steps < 0:
        raise ValueError("Online mode samples without end: set trainer.max_steps to say when to stop.")
    if prompts_per_step < trainer.accumulate_grad_batches:
        raise ValueError(
            f"OnlineDataModule(prompts_per_step={prompts_per_step}) cannot fill the "
            f"{trainer.accumulate_grad_batches} micro-batches of a step (accumulate_grad_batches): every "
            "micro-batch needs at least one prompt's pair, items or group. Set prompts_per_step >= "
            f"{trainer.accumulate_grad_batches}."
        )
    return spec.check_builder(builder or spec.builder(), type(module).__name__)
