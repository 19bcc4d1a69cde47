"""Objective specs: what an objective family's data looks like, offline and online, in one place.

A module names its spec (``DPOModule.spec = PAIRED``; the class is ``hl_lightning.data.handover.ObjectiveSpec``) and
hands it to its data module at setup: ``OnlineDataModule`` picks the online builder from it (unless the YAML gives
one of the spec's kind); ``AlignmentModule`` checks that a data module and its batches fit. There is no
table keyed by objective names: a new objective with a new data shape adds a spec, a batch class, a
collate function and a builder, and touches none of the code that uses them.
"""

from __future__ import annotations

from hl_lightning.data import GroupDataModule, PreferenceDataModule, UnpairedPreferenceDataModule
from hl_lightning.data.batches import GroupBatch, PairedBatch, UnpairedBatch
from hl_lightning.data.handover import ObjectiveSpec
from hl_lightning.online.builders import BestWorstItems, GroupBuilder, PairBuilder

__all__ = ["GROUPED", "PAIRED", "UNPAIRED", "ObjectiveSpec"]


PAIRED = ObjectiveSpec("preference pairs", PairedBatch, PreferenceDataModule, PairBuilder)
UNPAIRED = ObjectiveSpec("unpaired items", UnpairedBatch, UnpairedPreferenceDataModule, BestWorstItems)
GROUPED = ObjectiveSpec("scored groups", GroupBatch, GroupDataModule, GroupBuilder)
