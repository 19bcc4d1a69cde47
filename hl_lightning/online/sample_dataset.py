"""``hl-lightning-sample``: an offline TRL-format dataset from any model's scored samples.

    hl-lightning-sample --model smollm2 --output data/smollm2_pairs.jsonl --builder PairBuilder \\
        --reward.class_path hl_lightning.rewards.ExactMatchReward

writes JSON Lines that ``PreferenceDataModule`` (``PairBuilder``), ``UnpairedPreferenceDataModule``
(``BestWorstItems``, ``ThresholdItems``) and ``GroupDataModule`` (``GroupBuilder``) read unchanged, and
``<output>.meta.json`` recording the model, the builder, the sampling settings, the reward and the seed.
Pairs, items and groups are built by the same builders as in online mode (``hl_lightning.online.builders``).
"""

from __future__ import annotations

import datetime
import inspect
import json
import logging
import sys
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

from hl_lightning.data.prompts import data_paths, load_prompts
from hl_lightning.models.engines import KVCacheEngine, RolloutEngine, SamplingConfig, check_engine, engine_option_error
from hl_lightning.models.loading import load_causal_lm, load_tokenizer
from hl_lightning.online.builders import Builder
from hl_lightning.online.checks import check_sampling
from hl_lightning.online.rollout import rollout_metrics, sample_and_score
from hl_lightning.rewards import Reward

log = logging.getLogger(__name__)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Reward):
        return describe_reward(value)
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value if isinstance(value, str | int | float | bool | type(None)) else repr(value)


def describe_reward(reward: Reward) -> dict:
    """``class_path``, ``name`` and the ``init_args`` that can be read back from the reward's attributes."""
    cls = type(reward)
    params = [
        p
        for p in inspect.signature(cls.__init__).parameters.values()
        if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    init_args = {p.name: _jsonable(getattr(reward, p.name)) for p in params if hasattr(reward, p.name)}
    return {"class_path": _class_path(reward), "name": reward.name, "init_args": init_args}


def _class_path(obj: object) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def write_dataset(
    model: str,
    output: str,
    builder: Builder,
    reward: Reward,
    prompts: str = "arithmetic",
    columns: dict[str, str | None] | None = None,
    limit: int | None = None,
    sampling: SamplingConfig | None = None,
    seed: int = 0,
    dtype: str = "float32",
    device: str | None = None,
    engine: RolloutEngine | None = None,
    *,
    reward_spec: dict | None = None,
) -> Path:
    """Sample completions per prompt from ``model``, score them, write a TRL-format dataset and return its path.

    Args:
        model: model spec: "smollm2", "tiny-random", a ``save_pretrained`` directory or a Hub id.
        output: the JSONL file to write (``<output>.meta.json`` is written beside it).
        builder: what each prompt's scored completions become, as online: ``PairBuilder`` (pairs),
            ``BestWorstItems`` / ``ThresholdItems`` (KTO items) or ``GroupBuilder`` (groups).
        reward: scores completions (``--reward.class_path`` on the command line).
        prompts: "arithmetic" (the shipped ``prompts_train.jsonl``) or a prompt file with a ``prompt`` column.
        columns: maps our column names to the file's, e.g. ``{"prompt": "question"}``.
        limit: sample only the first ``limit`` prompts (None = all).
        sampling: completions per prompt, new tokens, temperature, top-p, batch size (default 4, 32, 0.7, 0.95, 16).
        seed: seed of the sampling RNG.
        dtype: model weights dtype ("float32", "bfloat16", "float16").
        device: where to run the model; default CUDA when available, else CPU.
        engine: what samples (docs/rollout-engines.md, e.g. ``TransformersGenerateEngine``); None: ``KVCacheEngine``.
        reward_spec: the reward's configuration for the metadata (default: read back from the reward).
    """
    sampling = check_sampling(sampling or SamplingConfig(), "hl-lightning-sample (sampling)")
    engine = _refreshed(engine, model, dtype, device)
    tokenizer = load_tokenizer(model)
    path = data_paths(prompts, None, "prompts")[0]
    chosen = load_prompts(path, tokenizer, max_prompt_length=10**9, columns=columns)[:limit]
    rows_in, messages = [p.row for p in chosen], [p.messages for p in chosen]
    rollout = sample_and_score(engine, tokenizer, rows_in, messages, reward, sampling, seed, progress=True)
    rows, counts = _select_rows(builder, rollout)
    meta = dict(model=model, builder=repr(builder), prompts=str(path), rows=len(rows), prompts_sampled=len(chosen))
    meta |= counts | dict(seed=seed, sampling=asdict(sampling), reward=reward_spec or describe_reward(reward))
    meta |= dict(metrics=rollout_metrics([rollout]), dtype=dtype, engine=_class_path(engine))
    out = _write(Path(output), rows, meta)
    if not rows:
        log.warning("%s: no rows: every prompt was dropped (%s, or empty completions)", out, builder.why_dropped())
    return out


def _refreshed(engine: RolloutEngine | None, model: str, dtype: str, device: str | None) -> RolloutEngine:
    """``engine`` (default: ``KVCacheEngine``) refreshed with the model, loaded on ``device`` (default: CUDA when
    available, else CPU)."""
    engine = check_engine(engine or KVCacheEngine(), "hl-lightning-sample --engine")
    policy = load_causal_lm(model, dtype)
    torch.nn.Module.to(policy, device or ("cuda" if torch.cuda.is_available() else "cpu"))  # in place
    engine.refresh(policy)
    return engine


def _write(out: Path, rows: list[dict], meta: dict) -> Path:
    """Write ``rows`` as JSON Lines and ``meta`` (plus the date and our version) to ``<out>.meta.json``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    meta = {
        **meta,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "hl_lightning_version": _version(),
    }
    Path(f"{out}.meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    log.info(
        "Wrote %d rows from %d prompts to %s (%d dropped)",
        len(rows),
        meta["prompts_sampled"],
        out,
        meta["dropped_prompts"],
    )
    return out


def _select_rows(builder: Builder, rollout) -> tuple[list[dict], dict[str, int]]:
    """The builder's TRL rows of every prompt, skipping empty completions (the offline readers reject them)."""
    rows, dropped, empty = [], 0, 0
    for row, texts, rewards in zip(rollout.rows, rollout.texts, rollout.rewards, strict=True):
        keep = [k for k, text in enumerate(texts) if text.strip()]
        empty += len(texts) - len(keep)
        selected = builder.trl_rows(row, [texts[k] for k in keep], [rewards[k] for k in keep]) if len(keep) > 1 else []
        dropped += not selected
        rows += selected
    return rows, {"dropped_prompts": dropped, "empty_completions": empty}


def _version() -> str:
    try:
        return version("hl-lightning")
    except PackageNotFoundError:
        return "unknown"


def _parse(parser, args: list[str] | None):
    """``parser.parse_args(args)``; a class given for ``--engine`` that is not an engine is one line and exit 2."""
    from jsonargparse import ArgumentError

    parser.exit_on_error = False
    try:
        return parser.parse_args(args)
    except ArgumentError as err:
        message = engine_option_error(str(err))
        parser.exit_on_error = True
        if message is None:
            parser.error(str(err))
        sys.stderr.write(f"error: {message}\n")
        raise SystemExit(2) from None


def main(args: list[str] | None = None) -> None:
    """The ``hl-lightning-sample`` command (``args=None`` reads ``sys.argv``); every option has ``--help``."""
    from jsonargparse import ActionConfigFile, ArgumentParser

    parser = ArgumentParser(prog="hl-lightning-sample", description=__doc__.split("\n\n")[0], default_env=False)
    parser.add_argument("--config", action=ActionConfigFile, help="a YAML file with any of the options below")
    parser.add_function_arguments(write_dataset, skip={"reward_spec"})
    cfg = _parse(parser, args)
    spec = cfg.reward.as_dict()
    init = parser.instantiate_classes(cfg)
    names = [n for n in inspect.signature(write_dataset).parameters if n != "reward_spec"]
    path = write_dataset(**{n: init[n] for n in names}, reward_spec=spec)
    print(f"Wrote {path} and {path}.meta.json")


if __name__ == "__main__":
    main()
