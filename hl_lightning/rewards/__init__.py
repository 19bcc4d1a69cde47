"""Rewards for online sampling and GRPO, chosen in YAML by ``class_path``.

Every reward is a :class:`Reward`: ``reward(prompts, completions, **row_fields) -> list[float]``, and
``reward.score(...)`` does the same and validates the output (:func:`validate_rewards`). A plain function
becomes one with :class:`CallableReward`; :func:`user_reward` turns whatever ``OnlineDataModule(reward=...)``
receives into a checked reward (:mod:`hl_lightning.rewards.user`).
"""

from hl_lightning.rewards.base import CallableReward, Reward, RewardError, WeightedSum, validate_rewards
from hl_lightning.rewards.reward_model import RewardModelReward
from hl_lightning.rewards.rules import ExactMatchReward, FormatReward
from hl_lightning.rewards.sentiment import SentimentReward
from hl_lightning.rewards.user import (
    FunctionReward,
    RewardImportError,
    RewardLike,
    as_reward,
    check_reward,
    import_object,
    user_reward,
)

__all__ = [
    "CallableReward",
    "ExactMatchReward",
    "FormatReward",
    "FunctionReward",
    "Reward",
    "RewardError",
    "RewardImportError",
    "RewardLike",
    "RewardModelReward",
    "SentimentReward",
    "WeightedSum",
    "as_reward",
    "check_reward",
    "import_object",
    "user_reward",
    "validate_rewards",
]
