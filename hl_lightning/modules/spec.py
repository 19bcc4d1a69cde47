"""Objective specs: what an objective family's data looks like, offline and online, in one place.

A module names its spec (``DPOModule.spec = PAIRED``); everything else reads it from the module:
``OnlineDataModule`` picks the online builder (unless the YAML gives one of the spec's kind),
``AlignmentModule`` checks that a data module and its batches fit, and the README lists them. There is no
table keyed by objective names: a new objective with a new data shape adds a spec, a batch class, a
collate function and a builder, and touches none of the code that uses them.
"""

from __future__ import annotations

from dataclasses import dataclass

from hl_lightning.data import GroupDataModule, PreferenceDataModule, UnpairedPreferenceDataModule
from hl_lightning.data.base import BaseDataModule
from hl_lightning.data.batches import GroupBatch, PairedBatch, UnpairedBatch
from hl_lightning.online.builders import BestWorstItems, Builder, GroupBuilder, PairBuilder


@dataclass(frozen=True)
class ObjectiveSpec:
    """The data side of an objective family.

    Attributes:
        name: what the data is, for messages ("preference pairs").
        batch: the typed batch the module trains on (``hl_lightning.data.batches``).
        data_module: the offline data module that produces it from a TRL-format file.
        builder: the default online builder (``hl_lightning.online.builders``); any builder whose ``batch``
            is ``batch`` may replace it.
    """

    name: str
    batch: type
    data_module: type[BaseDataModule]
    builder: type[Builder]

    def check_builder(self, builder: Builder, module: str) -> Builder:
        """Return ``builder`` if it produces this spec's batches, else raise naming both."""
        if builder.batch is not self.batch:
            raise TypeError(
                f"{module} trains on {self.name} ({self.batch.__name__}), but the online builder "
                f"{builder!r} makes {builder.batch.__name__} batches; remove builder: to use the default "
                f"({self.builder.__name__}) or pick a builder of {self.batch.__name__} batches."
            )
        return builder


PAIRED = ObjectiveSpec("preference pairs", PairedBatch, PreferenceDataModule, PairBuilder)
UNPAIRED = ObjectiveSpec("unpaired items", UnpairedBatch, UnpairedPreferenceDataModule, BestWorstItems)
GROUPED = ObjectiveSpec("scored groups", GroupBatch, GroupDataModule, GroupBuilder)
