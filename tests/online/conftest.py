"""Fixtures for online mode: a tiny model whose samples depend on its weights, deterministic rewards."""

from __future__ import annotations

import copy

import pytest
import torch

from hl_lightning.models.loading import load_causal_lm


@pytest.fixture(scope="session")
def lively_weights():
    """The tiny random Llama with larger block weights, so its samples depend on the context and on the weights.

    (With its small default init the tied-embedding model mostly repeats the last prompt token.)
    """
    model = load_causal_lm("tiny-random")
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in model.model.layers.parameters():
            if param.dim() == 2:
                param.normal_(0.0, 0.3, generator=gen)
    return model.state_dict()


@pytest.fixture
def lively_model(lively_weights):
    """A fresh copy of the lively tiny model."""
    model = load_causal_lm("tiny-random")
    model.load_state_dict(copy.deepcopy(lively_weights))
    return model


@pytest.fixture(autouse=True)
def _shared_tokenizer(monkeypatch, tokenizer):
    """Reuse the session tokenizer in the online data module instead of reloading it."""
    monkeypatch.setattr("hl_lightning.online.datamodule.load_tokenizer", lambda spec: tokenizer)
