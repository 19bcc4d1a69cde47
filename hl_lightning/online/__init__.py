"""Online mode: the current policy samples, a reward scores, and DPO / KTO / GRPO train on fresh data.

- :class:`OnlineDataModule`: the switch (``data.class_path: hl_lightning.online.OnlineDataModule``).
- :mod:`hl_lightning.online.builders`: from one prompt's rewards to pairs, items or groups (one builder per
  objective family, with its own thresholds).
- :func:`write_dataset` (``hl-lightning-sample``): an offline TRL-format dataset from any model's samples.
"""

from hl_lightning.online.builders import (
    BestWorstItems,
    Builder,
    GroupBuilder,
    PairBuilder,
    ThresholdItems,
    UnpairedBuilder,
    best_worst_pairs,
    group_advantages_of,
    threshold_labels,
)
from hl_lightning.online.datamodule import OnlineDataModule
from hl_lightning.online.rollout import Rollout, SamplingConfig, sample_and_score
from hl_lightning.online.sample_dataset import write_dataset

__all__ = [
    "BestWorstItems",
    "Builder",
    "GroupBuilder",
    "OnlineDataModule",
    "PairBuilder",
    "Rollout",
    "SamplingConfig",
    "ThresholdItems",
    "UnpairedBuilder",
    "best_worst_pairs",
    "group_advantages_of",
    "sample_and_score",
    "threshold_labels",
    "write_dataset",
]
