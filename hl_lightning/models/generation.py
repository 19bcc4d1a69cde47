"""Batched generation from chat prompts with a Hugging Face causal LM, for evaluation and online sampling."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from hl_lightning.models.chat import chat_messages, render_prompt
from hl_lightning.models.engines import RolloutEngine, SamplingConfig, as_engine


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


def generate(
    model: torch.nn.Module | RolloutEngine,
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
    training) and tokenized; a rollout engine (:mod:`hl_lightning.models.engines`) samples them in left-padded
    batches (by default our KV-cache decode: each prompt prefilled once for all its completions, finished rows
    leaving the batch); the training mode is restored.

    Args:
        model: a Hugging Face causal LM (one whose forward takes ``cache``, ``position_ids``, ``logits_to_keep``),
            sampled by the default engine, or a rollout engine already refreshed with the policy.
        tokenizer: its tokenizer; its end-of-sequence id stops a completion (with the model's own end ids).
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
    start = time.perf_counter()
    sampling = SamplingConfig(num_return_sequences, max_new_tokens, temperature, top_p, batch_size)
    rendered = [render_prompt(tokenizer, chat_messages(p)) for p in prompts]
    prompt_ids = tokenizer(rendered, add_special_tokens=False)["input_ids"] if rendered else []
    eos = {tokenizer.eos_token_id} - {None}
    out = as_engine(model).sample(prompt_ids, sampling, eos=eos, seed=seed, progress=desc if progress else None)
    return Generations.of(tokenizer, out.ids, out.truncated, time.perf_counter() - start)
