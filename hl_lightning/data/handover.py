"""What a data module learns from the objective module it feeds, handed over once at setup.

``AlignmentModule.setup`` calls ``datamodule.connect(ModelHandle(...))`` on any data module that has ``connect``
(every hl_lightning data module), before the first batch is asked for: the data side never reaches into
``trainer.lightning_module`` and never changes the model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from hl_lightning.data.base import BaseDataModule


@dataclass(frozen=True)
class ObjectiveSpec:
    """The data side of an objective family (``DPOModule.spec = PAIRED``: ``hl_lightning.modules.spec``).

    Attributes:
        name: what the data is, for messages ("preference pairs").
        batch: the typed batch the module trains on (``hl_lightning.data.batches``).
        data_module: the offline data module that produces it from a TRL-format file.
        builder: the default online builder class (``hl_lightning.online.builders``); any builder whose ``batch``
            is ``batch`` may replace it.
    """

    name: str
    batch: type
    data_module: type[BaseDataModule]
    builder: type

    def check_builder(self, builder: Any, module: str) -> Any:
        """Return ``builder`` if it produces this spec's batches, else raise naming both."""
        if builder.batch is not self.batch:
            raise TypeError(
                f"{module} trains on {self.name} ({self.batch.__name__}), but the online builder "
                f"{builder!r} makes {builder.batch.__name__} batches; remove builder: to use the default "
                f"({self.builder.__name__}) or pick a builder of {self.batch.__name__} batches."
            )
        return builder


@dataclass(frozen=True)
class ModelHandle:
    """The objective module as its data module sees it.

    Attributes:
        name: the module's class name, for messages.
        spec: its objective family's data.
        model_spec: the policy's model spec (a data module without a tokenizer of its own loads this one's), or None
            when the module was given a model object.
        policy: the policy, for online sampling (read only: the data side never changes it).
        reset_reference: asks the module to reset its reference to the policy (an online round's start); None for
            a reference-free objective.
        cached_ref_logps: True when the module serves reference log-probs from a cache (refused online).
    """

    name: str
    spec: ObjectiveSpec
    model_spec: str | None
    policy: torch.nn.Module
    reset_reference: Callable[[], None] | None = None
    cached_ref_logps: bool = False
