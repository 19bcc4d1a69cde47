"""A deterministic judge for the unverifiable task: VADER sentiment (PyPI ``vaderSentiment``, MIT, a lexicon)."""

from __future__ import annotations

from hl_lightning.extras import require
from hl_lightning.rewards.base import Reward


class SentimentReward(Reward):
    """VADER's compound sentiment of the completion, in [-1, 1] (``vaderSentiment`` 3.3.2, Hutto & Gilbert 2014).

    Needs ``pip install 'hl-lightning[sentiment]'``. Deterministic, no weights, fast. Its limits, which
    docs/guides/datasets.md repeats: it is a lexicon of English words with hand-set valences plus rules for negation,
    intensifiers and punctuation, so it rewards warm *words*, not helpfulness, truth, fluency or following the
    prompt; it can be gamed by piling up positive words and exclamation marks; it ignores the prompt; sarcasm and
    other languages are beyond it. On this project's sentiment task it measures one thing well: how warm a
    one-sentence remark reads.
    """

    name = "sentiment"

    def __init__(self) -> None:
        vader = require("vaderSentiment.vaderSentiment", "sentiment", "SentimentReward")
        self._analyzer = vader.SentimentIntensityAnalyzer()

    def __call__(self, prompts: list[str], completions: list[str], **row_fields) -> list[float]:
        return [float(self._analyzer.polarity_scores(text)["compound"]) for text in completions]
