"""LightningModules for each objective, on a shared policy + reference base."""

from hl_lightning.modules.base import AlignmentModule
from hl_lightning.modules.dpo import DPOModule
from hl_lightning.modules.grpo import GRPOModule
from hl_lightning.modules.kto import KTOModule

__all__ = ["AlignmentModule", "DPOModule", "GRPOModule", "KTOModule"]
