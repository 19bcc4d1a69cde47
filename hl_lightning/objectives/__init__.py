"""Pure loss objects for DPO, IPO, KTO, SimPO and GRPO, with optional humanline clipping.

They take per-token tensors of shape (B, T): fp32 log-probs of completion tokens and a bool mask (True
on real completion tokens). They never touch a model and import neither Lightning nor transformers.
"""

from hl_lightning.objectives.dpo import DPOLoss
from hl_lightning.objectives.grpo import GRPOLoss, group_advantages
from hl_lightning.objectives.ipo import IPOLoss
from hl_lightning.objectives.kto import KTOLoss
from hl_lightning.objectives.logratio import ClipLogRatio, gate_from_spec, log_ratio_metrics, token_log_ratio
from hl_lightning.objectives.sampling import SampleLogRatio
from hl_lightning.objectives.simpo import SimPOLoss
from hl_lightning.objectives.types import LossOutput, masked_mean, masked_sum

__all__ = [
    "ClipLogRatio",
    "DPOLoss",
    "GRPOLoss",
    "IPOLoss",
    "KTOLoss",
    "LossOutput",
    "SampleLogRatio",
    "SimPOLoss",
    "gate_from_spec",
    "group_advantages",
    "log_ratio_metrics",
    "masked_mean",
    "masked_sum",
    "token_log_ratio",
]
