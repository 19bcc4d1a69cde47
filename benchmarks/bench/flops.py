"""Model FLOPs of a step and this CPU's measured fp32 matmul peak: how far a step is from the hardware limit.

Model FLOPs count the matrix multiplications a step must do on its real (non-padding) tokens, the usual MFU
convention: a forward costs ``2 * P_body`` per token through the decoder (every linear layer; the input
embedding is a lookup, not a matmul), ``4 * L * d * n_k`` per token for attention scores and values (``n_k`` keys
it attends to), and ``2 * V * d`` per token where the LM head runs (our log-prob path runs it only at positions
that predict a completion token). A backward costs twice its forward. A prompt shared by several rows
(``share_prompt``) is computed once, so it is counted once: the FLOPs a framework that recomputes it does
are wasted work, not model FLOPs.
"""

from __future__ import annotations

import statistics
import time

import torch


def matmul_peak_flops(n: int = 2048, repeats: int = 5) -> float:
    """fp32 FLOP/s of the best of ``repeats`` ``torch.mm`` of two n x n matrices (2 n^3 FLOPs each), at the
    current torch thread count: the practical peak of this CPU for the dense work a step is made of."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)  # warm-up: thread pool, caches
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def model_shape(model: torch.nn.Module) -> dict:
    """Decoder parameters (every parameter but the input embedding and an untied LM head), layers, width and
    vocabulary of a Hugging Face causal LM."""
    config = model.config
    embed, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    skip = {embed.data_ptr(), head.data_ptr()}
    body = sum(p.numel() for p in model.parameters() if p.data_ptr() not in skip)
    return {"body": body, "layers": config.num_hidden_layers, "width": config.hidden_size, "vocab": head.shape[0]}


def forward_flops(shape: dict, tokens: int, attended: int, head_tokens: int) -> float:
    """One forward: ``tokens`` through the decoder, ``attended`` (query, key) pairs in all, the LM head at
    ``head_tokens`` positions."""
    return (
        2 * shape["body"] * tokens
        + 4 * shape["layers"] * shape["width"] * attended
        + 2 * shape["vocab"] * shape["width"] * head_tokens
    )


def rows_work(
    input_ids: torch.Tensor, attention_mask: torch.Tensor, completion_mask: torch.Tensor, shared: list[list[int]]
) -> tuple[int, int, int]:
    """(tokens, attended pairs, head tokens) of a batch of rows, each group of ``shared`` rows running its
    prompt once (causal attention: a token at position i attends to i + 1 keys)."""
    real = attention_mask.sum(-1).tolist()
    completion = completion_mask.sum(-1).tolist()
    prompt = [r - c for r, c in zip(real, completion, strict=True)]
    tokens = sum(real) - sum(prompt[i] for group in shared for i in group[1:])
    attended = sum(r * (r + 1) // 2 for r in real) - sum(
        prompt[i] * (prompt[i] + 1) // 2 for group in shared for i in group[1:]
    )
    return tokens, attended, sum(completion)


def step_flops(shape: dict, work: tuple[int, int, int], reference: bool = True) -> float:
    """A training step: the policy's forward and backward (3 forwards' worth) plus the reference's forward."""
    return (3 + int(reference)) * forward_flops(shape, *work)


def decode_flops(shape: dict, prompt_tokens: list[int], new_tokens: list[int]) -> float:
    """Sampling: each prompt's prefill, then one token at a time attending to everything before it (one LM head
    per generated token and once at the end of each prefill)."""
    total = 0.0
    for p, n in zip(prompt_tokens, new_tokens, strict=True):
        total += forward_flops(shape, p, p * (p + 1) // 2, 1)
        total += forward_flops(shape, n, sum(p + i + 1 for i in range(n)), n)
    return total


def mean_step_flops(model: torch.nn.Module, batches, reference: bool = True) -> dict:
    """Mean model FLOPs of a training step over typed batches (real tokens, each shared prompt once), and the mean
    real tokens per step."""
    shape = model_shape(model)
    works = []
    for batch in batches:
        rows = batch.rows() if callable(batch.rows) else batch.rows  # a GRPO batch holds its rows
        works.append(rows_work(rows.input_ids, rows.attention_mask, rows.completion_mask, rows.shared))
    return {
        "step": statistics.fmean(step_flops(shape, w, reference) for w in works),
        "tokens": statistics.fmean(w[0] for w in works),
        "shape": shape,
    }
