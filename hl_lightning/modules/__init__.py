"""LightningModules for each objective, on a shared policy + reference base."""

from hl_lightning.modules.base import AlignmentModule
from hl_lightning.modules.dpo import DPOModule
from hl_lightning.modules.grpo import GRPOModule
from hl_lightning.modules.ipo import IPOModule
from hl_lightning.modules.kto import KTOModule
from hl_lightning.modules.paired import PairedModule
from hl_lightning.modules.simpo import SimPOModule
from hl_lightning.modules.spec import GROUPED, PAIRED, UNPAIRED, ObjectiveSpec

__all__ = [
    "GROUPED",
    "PAIRED",
    "UNPAIRED",
    "AlignmentModule",
    "DPOModule",
    "GRPOModule",
    "IPOModule",
    "KTOModule",
    "ObjectiveSpec",
    "PairedModule",
    "SimPOModule",
]
