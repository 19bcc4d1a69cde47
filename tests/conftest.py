"""Shared fixtures: offline mode, one thread, the SmolLM2 tokenizer and tiny random Llamas."""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test` runs 2 workers on 2 cores: one thread each, never 4
    os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the subprocesses a test starts

import pytest
import torch

from hl_lightning.data.batches import PairedBatch, Rows
from hl_lightning.models.loading import load_causal_lm, load_tokenizer

torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def tokenizer():
    """The SmolLM2 tokenizer (what tiny-random models use)."""
    return load_tokenizer("tiny-random")


@pytest.fixture
def tiny_model():
    """A fresh seeded 2-layer random Llama (hidden 64) with the SmolLM2 vocabulary."""
    return load_causal_lm("tiny-random")


def make_batch(
    num_rows: int, prompt_len: int = 5, completion_lens: list[int] | None = None, seed: int = 0, vocab: int = 1000
) -> dict[str, torch.Tensor]:
    """A right-padded batch per docs/CONTRACTS.md with random ids (row lengths differ to exercise padding)."""
    g = torch.Generator().manual_seed(seed)
    lens = completion_lens or [3 + (i % 3) for i in range(num_rows)]
    width = prompt_len + max(lens)
    input_ids = torch.full((num_rows, width), 2, dtype=torch.long)
    attention_mask = torch.zeros(num_rows, width, dtype=torch.long)
    completion_mask = torch.zeros(num_rows, width, dtype=torch.bool)
    for row, n in enumerate(lens):
        input_ids[row, : prompt_len + n] = torch.randint(3, vocab, (prompt_len + n,), generator=g)
        attention_mask[row, : prompt_len + n] = 1
        completion_mask[row, prompt_len : prompt_len + n] = True
    return {"input_ids": input_ids, "attention_mask": attention_mask, "completion_mask": completion_mask}


def make_rows(num_rows: int, **kwargs) -> Rows:
    """:func:`make_batch` as typed ``Rows``."""
    return Rows(**make_batch(num_rows, **kwargs))


def make_pair_batches(num_batches: int, pairs: int = 2, seed: int = 0) -> list[PairedBatch]:
    """Paired (DPO) batches of ``pairs`` pairs with random ids, the chosen and rejected rows of a pair sharing
    nothing (so the module's prompt sharing is not exercised here), an ``index`` per pair."""
    batches = []
    for b in range(num_batches):
        rows = make_batch(2 * pairs, seed=seed + b)
        index = torch.arange(b * pairs, (b + 1) * pairs)
        half = [
            Rows(**{k: v[part] for k, v in rows.items()}, keys=2 * index + r)
            for r, part in enumerate((slice(0, pairs), slice(pairs, None)))
        ]
        batches.append(PairedBatch(chosen=half[0], rejected=half[1], index=index))
    return batches


@pytest.fixture
def write_jsonl(tmp_path):
    """``write_jsonl(name, rows) -> Path``: write rows as JSON Lines under tmp_path."""

    def write(name: str, rows: list[dict]) -> Path:
        path = tmp_path / name
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
        return path

    return write
