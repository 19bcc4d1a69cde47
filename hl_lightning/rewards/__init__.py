"""Rewards for online sampling and GRPO, chosen in YAML by ``class_path``.

Every reward is a :class:`Reward`: ``reward(prompts, completions, **row_fields) -> list[float]``, and
``reward.score(...)`` does the same and validates the output (:func:`validate_rewards`).
"""

from hl_lightning.rewards.base import Reward, RewardError, WeightedSum, validate_rewards
from hl_lightning.rewards.reward_model import RewardModelReward
from hl_lightning.rewards.rules import ExactMatchReward, FormatReward, FunctionReward, import_object
from hl_lightning.rewards.sentiment import SentimentReward

__all__ = [
    "ExactMatchReward",
    "FormatReward",
    "FunctionReward",
    "Reward",
    "RewardError",
    "RewardModelReward",
    "SentimentReward",
    "WeightedSum",
    "import_object",
    "validate_rewards",
]
