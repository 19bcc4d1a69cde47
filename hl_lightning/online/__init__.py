"""Online mode: the current policy samples, a reward scores, and DPO / KTO / GRPO train on fresh data.

- :class:`OnlineDataModule`: the switch (``data.class_path: hl_lightning.online.OnlineDataModule``).
- :mod:`hl_lightning.online.builders`: from one prompt's rewards to pairs, items or groups (one builder per
  objective family, with its own thresholds).
- :func:`write_dataset` (``hl-lightning-sample``): an offline TRL-format dataset from any model's samples.
- Rollout engines (what samples; :mod:`hl_lightning.models.engines`): :class:`KVCacheEngine` (the default) and
  :class:`TransformersGenerateEngine`, or any :class:`RolloutEngine` (``data.init_args.engine: {class_path: ...}``).
"""

from hl_lightning.models.engines import Completions, InProcessEngine, KVCacheEngine, RolloutEngine, SamplingConfig
from hl_lightning.models.hf_engine import TransformersGenerateEngine
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
from hl_lightning.online.rollout import Rollout, sample_and_score
from hl_lightning.online.sample_dataset import write_dataset

__all__ = [
    "BestWorstItems",
    "Builder",
    "Completions",
    "GroupBuilder",
    "InProcessEngine",
    "KVCacheEngine",
    "OnlineDataModule",
    "PairBuilder",
    "Rollout",
    "RolloutEngine",
    "SamplingConfig",
    "ThresholdItems",
    "TransformersGenerateEngine",
    "UnpairedBuilder",
    "best_worst_pairs",
    "group_advantages_of",
    "sample_and_score",
    "threshold_labels",
    "write_dataset",
]
