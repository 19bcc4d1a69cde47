"""Online mode: the current policy samples, a reward scores, and DPO / KTO / GRPO train on fresh data.

- :class:`OnlineDataModule`: the switch (``data.class_path: hl_lightning.online.OnlineDataModule``).
- :mod:`hl_lightning.online.builders`: pure functions from one prompt's rewards to pairs, items or groups.
- :func:`write_dataset` (``hl-lightning-sample``): an offline TRL-format dataset from any model's samples.
"""

from hl_lightning.online.builders import best_worst_pairs, group_advantages_of, select, unpaired_labels
from hl_lightning.online.datamodule import OnlineDataModule
from hl_lightning.online.rollout import Rollout, SamplingConfig, sample_and_score
from hl_lightning.online.sample_dataset import write_dataset

__all__ = [
    "OnlineDataModule",
    "Rollout",
    "SamplingConfig",
    "best_worst_pairs",
    "group_advantages_of",
    "sample_and_score",
    "select",
    "unpaired_labels",
    "write_dataset",
]
