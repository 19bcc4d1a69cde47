"""Helpers for the online tests: a deterministic reward, a generate spy, a quick online data module."""

from __future__ import annotations

import zlib
from functools import partial

import torch

from hl_lightning.models.generation import generate
from hl_lightning.online import OnlineDataModule
from hl_lightning.rewards import Reward


class HashReward(Reward):
    """Deterministic and spread out: a completion's CRC32 mapped to [0, 1); equal texts tie."""

    name = "crc32"

    def __call__(self, prompts, completions, **row_fields):
        return [zlib.crc32(text.encode()) / 2**32 for text in completions]


def adamw(lr: float = 1e-2):
    """An optimizer factory with an LR large enough that every step visibly moves the tiny model."""
    return partial(torch.optim.AdamW, lr=lr)


def online_data(reward: Reward | None = None, **kwargs) -> OnlineDataModule:
    """An online data module on the arithmetic prompts with short, cheap rollouts (3 completions of 5 tokens)."""
    options = dict(
        tokenizer="tiny-random", num_generations=3, prompts_per_step=2, max_new_tokens=5, temperature=1.0, top_p=0.95
    )
    return OnlineDataModule(reward=reward or HashReward(), **{**options, **kwargs})


class GenerateSpy:
    """Stands in for ``generate`` inside the rollout module: calls the real one and records each call."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def __call__(self, model, tokenizer, prompts, **kwargs):
        out = generate(model, tokenizer, prompts, **kwargs)
        self.calls.append({"model": model, "prompts": prompts, "kwargs": kwargs, "out": out})
        return out
