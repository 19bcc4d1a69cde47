"""Early, explicit errors for online mode: bad options at construction, a mismatched trainer at setup."""

from __future__ import annotations

from hl_lightning.modules import DPOModule, GRPOModule, KTOModule

MODULES = {"dpo": DPOModule, "kto": KTOModule, "grpo": GRPOModule}


def check_options(objective: str, pair_threshold: float, advantage_eps: float, kto_mode: str, **positive: int) -> None:
    """Raise ``ValueError`` for an unknown objective or KTO mode, a negative ``pair_threshold``, a non-positive
    ``advantage_eps`` or any of ``positive`` (name=value) below 1."""
    if objective not in MODULES:
        raise ValueError(f"objective={objective!r}: choose one of {sorted(MODULES)}.")
    for name, value in positive.items():
        if value < 1:
            raise ValueError(f"{name}={value} must be >= 1.")
    if pair_threshold < 0 or not advantage_eps > 0 or kto_mode not in ("best_worst", "threshold"):
        raise ValueError(f"Need pair_threshold >= 0, advantage_eps > 0 and kto_mode in ('best_worst', 'threshold'); "
                         f"got {pair_threshold=}, {advantage_eps=}, {kto_mode=}.")


def check_trainer(trainer, objective: str) -> None:
    """The model must be the objective's module, without reference caching, and ``max_steps`` must be set."""
    module, expected = trainer.lightning_module, MODULES[objective]
    if not isinstance(module, expected):
        fits = next((name for name, cls in MODULES.items() if isinstance(module, cls)), None)
        hint = f"set the data module's objective to {fits!r}" if fits else "use an hl_lightning objective module"
        raise TypeError(f"OnlineDataModule(objective={objective!r}) builds batches for {expected.__name__}, but the "
                        f"model is {type(module).__name__}: {hint}, or use {expected.__name__}.")
    if getattr(module, "serves_cached_ref_logps", False):
        raise ValueError("cache_ref_logps=true cannot be used online: every batch is new data, so the cache would "
                         "never hit and only grow. Set cache_ref_logps=false.")
    if trainer.max_steps is None or trainer.max_steps < 0:
        raise ValueError("Online mode samples without end: set trainer.max_steps to say when to stop.")
