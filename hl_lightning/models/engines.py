"""Rollout engines: what turns prompt token ids into sampled completion ids (online mode, ``hl-lightning-sample``).

An engine is any object with the two methods of :class:`RolloutEngine`:

- ``refresh(policy)``: sample from this policy from now on. ``OnlineDataModule`` calls it at the start of every
  sampling round, right before the round's first rollout (every ``sample_every_n_steps`` optimizer steps; with
  N = 1 after every step). Rollouts happen only there, so this is the one moment the engine must hold the
  current weights: the steps inside a round change the policy, but nothing samples from it until the next round.
  The extra rollouts of a starved round reuse the round's refresh. ``hl-lightning-sample`` refreshes once.
- ``sample(prompt_ids, sampling, eos=..., seed=..., progress=...)``: ``sampling.num_generations`` completions of
  every prompt, as :class:`Completions`.

Two ship here, chosen in YAML with ``data.init_args.engine: {class_path: ...}`` (default :class:`KVCacheEngine`):

- :class:`KVCacheEngine`: our KV-cache decode (:mod:`hl_lightning.models.decode`): one prefill per prompt,
  finished rows leave the batch, top-p without sorting the vocabulary;
- :class:`TransformersGenerateEngine`: Hugging Face ``model.generate`` with the same settings and stop rules.

Both run the policy module itself, in this process (:class:`InProcessEngine`), so ``refresh`` costs nothing.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from tqdm.auto import tqdm

from hl_lightning.models.decode import decode


@dataclass
class SamplingConfig:
    """How completions are sampled (recorded with every offline dataset written from samples).

    Attributes:
        num_generations: completions per prompt (G); online mode and ``hl-lightning-sample`` need at least 2.
        max_new_tokens: the most tokens generated per completion (the end-of-turn token included).
        temperature: sampling temperature; 0 decodes greedily (online mode and ``hl-lightning-sample`` need > 0).
        top_p: nucleus-sampling mass (1 disables it; ignored when greedy). No top-k filtering is applied.
        batch_size: prompts per decoding batch (each yields G completions).
    """

    num_generations: int = 4
    max_new_tokens: int = 32
    temperature: float = 0.7
    top_p: float = 0.95
    batch_size: int = 16

    def __post_init__(self) -> None:
        counts = (self.num_generations, self.max_new_tokens, self.batch_size)
        if self.temperature < 0 or not 0 < self.top_p <= 1 or min(counts) < 1:
            raise ValueError(
                "Need temperature >= 0, 0 < top_p <= 1 and num_generations, max_new_tokens, batch_size >= 1; "
                f"got {self}."
            )


@dataclass
class Completions:
    """What an engine returns, prompt-major (the ``num_generations`` completions of prompt 0 first).

    Attributes:
        ids: generated ids of each completion, up to and including its first end id (no padding).
        truncated: True where a completion hit ``max_new_tokens`` without an end id.
    """

    ids: list[list[int]]
    truncated: list[bool]


@runtime_checkable
class RolloutEngine(Protocol):
    """Samples completions from a policy (see the module docstring for when ``refresh`` is called)."""

    def refresh(self, policy: torch.nn.Module) -> None:
        """Sample from ``policy`` (its current weights) from now on."""

    def sample(
        self,
        prompt_ids: list[list[int]],
        sampling: SamplingConfig,
        *,
        eos: set[int],
        seed: int | None = None,
        progress: str | None = None,
    ) -> Completions:
        """``sampling.num_generations`` completions of each prompt (token ids, chat template applied, no padding),
        each stopped at its first id in ``eos`` (plus the policy's own end ids) or after ``max_new_tokens``;
        ``seed`` makes the call reproducible without touching the global RNG; ``progress`` labels a progress bar
        (None: no bar)."""
        ...


def check_engine(engine: object, option: str) -> RolloutEngine:
    """``engine`` if it has ``refresh`` and ``sample``, else a one-line ``TypeError`` naming ``option``."""
    if not isinstance(engine, RolloutEngine):
        raise TypeError(
            f"{option}: {type(engine).__qualname__} is not a rollout engine: it needs refresh(policy) and "
            "sample(prompt_ids, sampling, eos=..., seed=..., progress=...) (hl_lightning.models.engines.RolloutEngine)."
        )
    return engine


def engine_option_error(message: str) -> str | None:
    """The one-line form of a command-line parser's report that a class given for an engine option is not an
    engine, or None for any other report."""
    found = re.search(r"Import path ([\w.]+) does not implement protocol (\w+)", message)
    if found is None:
        return None
    keys = re.findall(r'Parser key "([^"]+)"', message)  # outermost first: data, then its init_args' engine
    option = ".init_args.".join(keys) or "engine"
    return (
        f"{option}: {found.group(1)} does not implement {found.group(2)}: an engine needs refresh(policy) and "
        "sample(prompt_ids, sampling, eos=..., seed=..., progress=...), e.g. hl_lightning.online.KVCacheEngine."
    )


def as_engine(sampler: torch.nn.Module | RolloutEngine) -> RolloutEngine:
    """``sampler`` if it is an engine, else the default engine (:class:`KVCacheEngine`) refreshed with it."""
    if not isinstance(sampler, torch.nn.Module):
        return sampler
    engine = KVCacheEngine()
    engine.refresh(sampler)
    return engine


def end_ids(model: torch.nn.Module, eos: set[int]) -> set[int]:
    """``eos`` and the end ids of the model's generation config, together."""
    config = getattr(model, "generation_config", None)
    extra = getattr(config, "eos_token_id", None)
    return {i for i in {*eos, *(extra if isinstance(extra, list) else [extra])} if i is not None}


@contextmanager
def seeded(seed: int | None, device: torch.device) -> Iterator[None]:
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


@contextmanager
def inference(model: torch.nn.Module, seed: int | None) -> Iterator[torch.device]:
    """Eval mode, ``no_grad`` and a seeded RNG (:func:`seeded`) for the block; the training mode is restored."""
    device, was_training = next(model.parameters()).device, model.training
    model.eval()
    try:
        with torch.no_grad(), seeded(seed, device):
            yield device
    finally:
        model.train(was_training)


def left_pad(rows: list[list[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``rows`` left-padded with ``pad_id`` into one tensor, and its attention mask (0 on the padding)."""
    width = max(map(len, rows))
    ids = torch.tensor([[pad_id] * (width - len(r)) + r for r in rows], device=device)
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=device)
    return ids, mask


class InProcessEngine(ABC):
    """An engine that samples with the policy module itself, in this process, in eval mode under ``no_grad`` (the
    training mode is restored), in left-padded batches of ``sampling.batch_size`` prompts. ``refresh`` keeps the
    module (nothing is copied; later in-place weight changes are seen too). Greedy decoding (temperature 0)
    decodes each prompt once and repeats its completion. Subclasses write :meth:`decode`, one batch."""

    def __init__(self) -> None:
        self.policy: torch.nn.Module | None = None

    def refresh(self, policy: torch.nn.Module) -> None:
        """Sample from ``policy`` from now on."""
        self.policy = policy

    def sample(
        self,
        prompt_ids: list[list[int]],
        sampling: SamplingConfig,
        *,
        eos: set[int],
        seed: int | None = None,
        progress: str | None = None,
    ) -> Completions:
        """See :meth:`RolloutEngine.sample`."""
        if self.policy is None:
            raise RuntimeError(
                f"{type(self).__name__}.sample before refresh(policy): refresh it with the policy first."
            )
        model, g = self.policy, sampling.num_generations
        stops = end_ids(model, eos)
        copies, repeats = (g, 1) if sampling.temperature > 0 else (1, g)
        ids: list[list[int]] = []
        with inference(model, seed) as device:
            starts = range(0, len(prompt_ids), sampling.batch_size)
            for start in tqdm(starts, desc=progress, disable=progress is None):
                input_ids, mask = left_pad(prompt_ids[start : start + sampling.batch_size], min(stops), device)
                for row in self.decode(model, input_ids, mask, copies, sampling, stops):
                    ids += [list(row) for _ in range(repeats)]
        return Completions(ids, [not row or row[-1] not in stops for row in ids])

    @abstractmethod
    def decode(
        self,
        model: torch.nn.Module,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        copies: int,
        sampling: SamplingConfig,
        stops: set[int],
    ) -> list[list[int]]:
        """``copies`` completions of each left-padded prompt row, prompt-major, each the generated ids up to and
        including its first id in ``stops`` (or ``sampling.max_new_tokens`` ids without one)."""


class KVCacheEngine(InProcessEngine):
    """The default engine: our KV-cache decode (:func:`hl_lightning.models.decode.decode`): each prompt prefilled
    once for all its completions, finished rows leaving the batch, top-p without sorting the vocabulary."""

    def decode(self, model, input_ids, attention_mask, copies, sampling, stops):
        """One batch through :func:`hl_lightning.models.decode.decode`."""
        return decode(
            model,
            input_ids,
            attention_mask,
            copies=copies,
            max_new_tokens=sampling.max_new_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p if sampling.temperature > 0 else 1.0,
            eos=stops,
        )
