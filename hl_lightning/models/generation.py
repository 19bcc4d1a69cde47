"""Batched generation from chat prompts with a Hugging Face causal LM, for evaluation and online sampling."""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from hl_lightning.models.chat import chat_messages, render_prompt
from hl_lightning.models.decode import decode


@dataclass
class Generations:
    """Completions of a ``generate`` call, in prompt-major order (all samples of prompt 0 first).

    Attributes:
        texts: completion text only, special tokens skipped.
        completion_ids: generated ids up to and including the first end-of-sequence token, no padding.
        truncated: True where generation hit ``max_new_tokens`` without an end-of-sequence token.
        num_tokens: total number of generated tokens (the sum of ``len(ids)`` over ``completion_ids``).
        seconds: wall-clock time of the whole call, tokenisation and decoding included.
    """

    texts: list[str]
    completion_ids: list[list[int]]
    truncated: list[bool]
    num_tokens: int
    seconds: float

    @classmethod
    def of(cls, tokenizer, completion_ids: list[list[int]], truncated: list[bool], seconds: float) -> Generations:
        """The generations of these token ids, decoded with ``tokenizer`` (special tokens skipped)."""
        texts = tokenizer.batch_decode(completion_ids, skip_special_tokens=True)
        return cls(texts, completion_ids, truncated, sum(map(len, completion_ids)), seconds)

    @property
    def tokens_per_s(self) -> float:
        """Generated tokens per second of wall-clock time (0 when no time was measured)."""
        return self.num_tokens / self.seconds if self.seconds > 0 else 0.0


def _eos_ids(model: torch.nn.Module, tokenizer) -> set[int]:
    """End-of-sequence ids of the tokenizer and of the model's generation config, together."""
    ids = {tokenizer.eos_token_id}
    config = getattr(model, "generation_config", None)
    extra = getattr(config, "eos_token_id", None)
    ids.update(extra if isinstance(extra, list) else [extra])
    ids.discard(None)
    return ids


@contextmanager
def _seeded(seed: int | None, device: torch.device):
    """Seed a fork of the CPU RNG (and of ``device``'s CUDA RNG) so the caller's RNG state stays intact."""
    if seed is None:
        yield
        return
    cuda = []
    if device.type == "cuda":
        cuda = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=cuda):
        torch.default_generator.manual_seed(seed)
        for index in cuda:
            torch.cuda.default_generators[index].manual_seed(seed)
        yield


def _sampling(max_new_tokens: int, temperature: float, top_p: float, num_return_sequences: int) -> dict:
    """Keyword arguments of :func:`~hl_lightning.models.decode.decode`; greedy decoding runs once per prompt (it
    would repeat itself) and the caller repeats its completion."""
    if temperature < 0 or not 0 < top_p <= 1 or num_return_sequences < 1:
        raise ValueError(
            f"Need temperature >= 0, 0 < top_p <= 1 and num_return_sequences >= 1; got {temperature=}, "
            f"{top_p=}, {num_return_sequences=}."
        )
    sample = temperature > 0
    return dict(
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p if sample else 1.0,
        copies=num_return_sequences if sample else 1,
    )


def _generate_batches(
    model,
    tokenizer,
    rendered: list[str],
    sampling: dict,
    eos: set[int],
    batch_size: int,
    repeats: int,
    progress: bool,
    desc: str,
) -> tuple[list[list[int]], list[bool]]:
    """Left-padded batches through :func:`decode` (each prompt prefilled once), every completion ``repeats``
    times; a completion is truncated when it ends without an end-of-sequence token."""
    device = next(model.parameters()).device
    completion_ids, truncated = [], []
    for i in tqdm(range(0, len(rendered), batch_size), desc=desc, disable=not progress):
        enc = tokenizer(
            rendered[i : i + batch_size],
            padding=True,
            padding_side="left",
            add_special_tokens=False,
            return_tensors="pt",
        ).to(device)
        for ids in decode(model, enc["input_ids"], enc["attention_mask"], eos=eos, **sampling):
            completion_ids += [list(ids) for _ in range(repeats)]
            truncated += [not ids or ids[-1] not in eos] * repeats
    return completion_ids, truncated


def generate(
    model: torch.nn.Module,
    tokenizer,
    prompts: list[list[dict]] | list[str],
    *,
    max_new_tokens: int = 64,
    temperature: float = 0.0,
    top_p: float = 1.0,
    num_return_sequences: int = 1,
    seed: int | None = None,
    batch_size: int = 16,
    progress: bool = False,
    desc: str = "generate",
) -> Generations:
    """Generate completions for chat prompts with a Hugging Face causal LM, in eval mode, under ``no_grad``.

    Prompts are rendered with :func:`hl_lightning.models.chat.render_prompt` (the chat template, as in
    training), left-padded and decoded in batches by :func:`hl_lightning.models.decode.decode` (each prompt
    prefilled once for all its completions, finished rows leaving the batch); the training mode is restored.

    Args:
        model: a Hugging Face causal LM (one whose forward takes ``cache``, ``position_ids``, ``logits_to_keep``).
        tokenizer: its tokenizer, with a pad token.
        prompts: one message list (``[{"role": ..., "content": ...}, ...]``) per prompt, or a string (one user turn).
        max_new_tokens: the most tokens generated per completion.
        temperature: 0 for greedy decoding, otherwise the sampling temperature.
        top_p: nucleus-sampling mass (1.0 disables it); ignored when greedy. No top-k filtering is applied.
        num_return_sequences: completions per prompt (greedy decoding runs once and repeats its completion).
        seed: sample on a forked RNG seeded with it (reproducible, the global RNG untouched); None: global RNG.
        batch_size: prompts per decoding batch (each yields ``num_return_sequences`` completions).
        progress: show a tqdm progress bar over the batches, labelled ``desc`` ("rollout" online).

    Returns Generations in prompt-major order: all samples of prompt 0 first, then prompt 1, ...
    """
    start, eos = time.perf_counter(), _eos_ids(model, tokenizer)
    sampling = _sampling(max_new_tokens, temperature, top_p, num_return_sequences)
    rendered = [render_prompt(tokenizer, chat_messages(p)) for p in prompts]
    repeats, was_training = (1 if temperature > 0 else num_return_sequences), model.training
    model.eval()
    try:
        with torch.no_grad(), _seeded(seed, next(model.parameters()).device):
            completion_ids, truncated = _generate_batches(
                model, tokenizer, rendered, sampling, eos, batch_size, repeats, progress, desc
            )
    finally:
        model.train(was_training)
    return Generations.of(tokenizer, completion_ids, truncated, time.perf_counter() - start)
