"""Data: readers and validators for the TRL formats, tokenisation, and the Lightning data modules."""

from hl_lightning.data.arithmetic import is_correct, parse_final_number
from hl_lightning.data.base import BaseDataModule
from hl_lightning.data.batches import BatchError, GroupBatch, PairedBatch, Rows, SkippedBatch, UnpairedBatch
from hl_lightning.data.groups import GroupDataModule
from hl_lightning.data.preference import PreferenceDataModule
from hl_lightning.data.rows import DataError, read_rows
from hl_lightning.data.sampler import ResumableSampler
from hl_lightning.data.tokenize import join, pad_batch
from hl_lightning.data.unpaired import UnpairedPreferenceDataModule

__all__ = [
    "BaseDataModule",
    "BatchError",
    "DataError",
    "GroupBatch",
    "GroupDataModule",
    "PairedBatch",
    "PreferenceDataModule",
    "ResumableSampler",
    "Rows",
    "SkippedBatch",
    "UnpairedBatch",
    "UnpairedPreferenceDataModule",
    "is_correct",
    "join",
    "pad_batch",
    "parse_final_number",
    "read_rows",
]
