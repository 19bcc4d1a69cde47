"""Fixtures for the data tests: one tokenizer per session, JSONL writing, and fast DataModule setup."""

from __future__ import annotations

import pytest

from hl_lightning.models.loading import load_tokenizer


@pytest.fixture(scope="session")
def tokenizer():
    """The SmolLM2 tokenizer (as used by the tiny-random model), loaded once."""
    return load_tokenizer("tiny-random")


@pytest.fixture(autouse=True)
def _shared_tokenizer(monkeypatch, tokenizer):
    """Make the DataModules reuse the session tokenizer instead of reloading it."""
    monkeypatch.setattr("hl_lightning.data.base.load_tokenizer", lambda spec: tokenizer)
