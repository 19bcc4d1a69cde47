"""Exact-match accuracy: exact scoring with stubbed generation, and a smoke run on the tiny model."""

import pytest

import hl_lightning.evaluation as evaluation
from hl_lightning.models.generation import Generations
from hl_lightning.models.loading import load_causal_lm, load_tokenizer

ROWS = [
    {"prompt": "What is 2 + 3?", "answer": 5},
    {"prompt": [{"role": "user", "content": "What is 4 - 9?"}], "answer": -5},
    {"prompt": "What is 3 * 4?", "answer": 12},
    {"prompt": "What is 7 + 7?", "answer": "14"},
]
TEXTS = ["2 + 3 = 5.", "That makes -5.", "I am not sure.", "7 + 7 is 15."]


@pytest.fixture(scope="module")
def tiny():
    return load_causal_lm("tiny-random"), load_tokenizer("tiny-random")


def test_accuracy_with_stubbed_generation(tiny, monkeypatch):
    calls = {}

    def fake_generate(model, tokenizer, prompts, **kwargs):
        calls.update(prompts=prompts, **kwargs)
        return Generations(TEXTS, [[1]] * 4, [False] * 4, num_tokens=4, seconds=1.0)

    monkeypatch.setattr(evaluation, "generate", fake_generate)
    result = evaluation.exact_match_accuracy(*tiny, ROWS, max_new_tokens=7, progress=False)
    assert (result.accuracy, result.n) == (0.5, 4)
    assert calls["prompts"] == [row["prompt"] for row in ROWS] and calls["max_new_tokens"] == 7
    assert "temperature" not in calls  # greedy: generate's default
    assert result.examples == [
        ("What is 2 + 3?", "2 + 3 = 5.", 5, True),
        ("What is 4 - 9?", "That makes -5.", -5, True),
        ("What is 3 * 4?", "I am not sure.", 12, False),
    ]
    assert str(result).startswith("exact-match accuracy 0.500 on 4 prompts")


def test_tiny_model_scores_its_own_greedy_answers(tiny):
    """The accuracy is the share of greedy completions (as generate gives them) whose last number is the answer."""
    from hl_lightning.models.generation import generate

    result = evaluation.exact_match_accuracy(
        *tiny, ROWS, max_new_tokens=4, batch_size=3, progress=False, num_examples=2
    )
    texts = generate(*tiny, [row["prompt"] for row in ROWS], max_new_tokens=4, batch_size=3).texts
    verdicts = [evaluation.parse_final_number(t) == row["answer"] for t, row in zip(texts, ROWS, strict=True)]
    assert result.n == 4 and result.accuracy == sum(verdicts) / 4
    assert [(e.completion, e.correct) for e in result.examples] == list(zip(texts, verdicts, strict=True))[:2]


def test_empty_rows(tiny):
    with pytest.raises(ValueError, match="at least one row"):
        evaluation.exact_match_accuracy(*tiny, [])
