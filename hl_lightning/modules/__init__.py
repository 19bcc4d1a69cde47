"""LightningModules for each objective, on a shared policy + reference base."""

from hl_lightning.modules.base import AlignmentModule
from hl_lightning.modules.dpo import DPOModule

__all__ = ["AlignmentModule", "DPOModule"]
