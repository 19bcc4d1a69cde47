"""The shipped sentiment task: reproducible, disjoint splits, and a judge that prefers every chosen answer."""

import json

import pytest

from hl_lightning.data import PreferenceDataModule
from hl_lightning.data.sentiment import DATA_DIR, make_rows
from hl_lightning.rewards import SentimentReward


def test_shipped_files_are_the_seeded_generator_output_byte_for_byte():
    for stem, rows in make_rows().items():
        assert (DATA_DIR / f"{stem}.jsonl").read_text() == "".join(json.dumps(r) + "\n" for r in rows), stem


def test_splits_are_disjoint_and_sized():
    rows = make_rows()
    train, test = ({r["prompt"] for r in rows[f"prompts_{s}"]} for s in ("train", "test"))
    assert (len(train), len(test), len(train & test)) == (240, 240, 0)
    assert len(rows["unpaired_train"]) == 480 and all(len(g["completions"]) == 4 for g in rows["groups_test"])


def test_the_judge_scores_every_chosen_answer_above_its_rejected_one():
    judge = SentimentReward()
    rows = make_rows()["pairs_train"] + make_rows()["pairs_test"]
    chosen = judge.score([r["prompt"] for r in rows], [r["chosen"] for r in rows])
    rejected = judge.score([r["prompt"] for r in rows], [r["rejected"] for r in rows])
    assert min(c - r for c, r in zip(chosen, rejected, strict=True)) > 0.8


def test_the_judge_is_vader_compound():
    """VADER 3.3.2's compound score: 'I love it.' has one lexicon word (love, valence 3.2); with the period
    compound = 3.2 / sqrt(3.2^2 + 15) = 0.6369; a neutral sentence scores 0."""
    judge = SentimentReward()
    assert judge.score(["p", "p"], ["I love it.", "The library opened a new wing."]) == [
        pytest.approx(0.6369, abs=1e-4),
        0.0,
    ]


def test_sentiment_is_a_builtin_path():
    data = PreferenceDataModule(path="sentiment", tokenizer="tiny-random", batch_size=2)
    data.setup("fit")
    assert len(data.train_set) == 240 and len(data.held_out_rows()) == 240
    assert "answer" not in data.held_out_rows()[0]
