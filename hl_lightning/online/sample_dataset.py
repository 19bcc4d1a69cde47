"""``hl-lightning-sample``: an offline TRL-format dataset from any model's scored samples.

    hl-lightning-sample --model smollm2 --output data/smollm2_pairs.jsonl --format pairs \\
        --reward.class_path hl_lightning.rewards.ExactMatchReward

writes JSON Lines that ``PreferenceDataModule`` (``pairs``), ``UnpairedPreferenceDataModule`` (``unpaired``)
and ``GroupDataModule`` (``groups``) read unchanged, and ``<output>.meta.json`` recording the model, the
sampling settings, the reward and the seed. Pairs, items and groups are built exactly as in online mode
(``hl_lightning.online.builders``).
"""

from __future__ import annotations

import datetime
import inspect
import json
import logging
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Literal

import torch

from hl_lightning.models.loading import load_causal_lm, load_tokenizer
from hl_lightning.online.builders import KTOMode, select
from hl_lightning.online.prompts import load_prompts, prompt_paths
from hl_lightning.online.rollout import SamplingConfig, rollout_metrics, sample_and_score
from hl_lightning.rewards import Reward

log = logging.getLogger(__name__)
OBJECTIVE = {"pairs": "dpo", "unpaired": "kto", "groups": "grpo"}


def _jsonable(value: Any) -> Any:
    if isinstance(value, Reward):
        return describe_reward(value)
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value if isinstance(value, str | int | float | bool | type(None)) else repr(value)


def describe_reward(reward: Reward) -> dict:
    """``class_path``, ``name`` and the ``init_args`` that can be read back from the reward's attributes."""
    cls = type(reward)
    params = [p for p in inspect.signature(cls.__init__).parameters.values()
              if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    init_args = {p.name: _jsonable(getattr(reward, p.name)) for p in params if hasattr(reward, p.name)}
    return {"class_path": f"{cls.__module__}.{cls.__qualname__}", "name": reward.name, "init_args": init_args}


def _rows(fmt: str, row: dict, texts: list[str], rewards: list[float], selection) -> list[dict]:
    extra = {k: v for k, v in row.items() if k != "prompt"}
    prompt = {"prompt": row["prompt"]}
    if fmt == "pairs":
        i, j = selection
        return [{**prompt, "chosen": texts[i], "rejected": texts[j], "chosen_score": rewards[i],
                 "rejected_score": rewards[j], **extra}]
    if fmt == "unpaired":
        return [{**prompt, "completion": texts[k], "label": desirable, "score": rewards[k], **extra}
                for k, desirable in selection]
    return [{**prompt, "completions": texts, "rewards": rewards, **extra}]


def write_dataset(
    model: str,
    output: str,
    format: Literal["pairs", "unpaired", "groups"],
    reward: Reward,
    prompts: str = "arithmetic",
    columns: dict[str, str] | None = None,
    limit: int | None = None,
    num_generations: int = 4,
    max_new_tokens: int = 32,
    temperature: float = 0.7,
    top_p: float = 0.95,
    seed: int = 0,
    pair_threshold: float = 0.01,
    kto_mode: KTOMode = "best_worst",
    kto_threshold: float = 0.5,
    batch_size: int = 16,
    dtype: str = "float32",
    device: str | None = None,
    *,
    reward_spec: dict | None = None,
) -> Path:
    """Sample ``num_generations`` completions per prompt from ``model``, score them, and write a TRL dataset.

    Args:
        model: model spec: "smollm2", "tiny-random", a ``save_pretrained`` directory or a Hub id.
        output: the JSONL file to write (``<output>.meta.json`` is written beside it).
        format: "pairs" (best vs worst, prompts with a reward gap <= ``pair_threshold`` dropped), "unpaired"
            (KTO items, see ``kto_mode``) or "groups" (all completions with their rewards).
        reward: scores completions (``--reward.class_path`` on the command line).
        prompts: "arithmetic" (the shipped ``prompts_train.jsonl``) or a prompt file with a ``prompt`` column.
        columns: maps our column names to the file's, e.g. ``{"prompt": "question"}``.
        limit: sample only the first ``limit`` prompts (None = all).
        num_generations: completions per prompt (>= 2).
        max_new_tokens: the most tokens per completion.
        temperature: sampling temperature (> 0).
        top_p: nucleus-sampling mass.
        seed: seed of the sampling RNG.
        pair_threshold: minimal best-worst reward gap for "pairs" and "unpaired" in "best_worst" mode.
        kto_mode: "best_worst" (one desirable and one undesirable item per prompt) or "threshold" (every
            completion, desirable when its reward is > ``kto_threshold``).
        kto_threshold: the reward level of ``kto_mode: threshold``.
        batch_size: prompts per generation batch.
        dtype: model weights dtype ("float32", "bfloat16", "float16").
        device: where to run the model; default CUDA when available, else CPU.
        reward_spec: how the reward was configured, for the metadata (the CLI passes its parsed config);
            default: read back from the reward object with :func:`describe_reward`.

    Returns:
        The path of the JSONL file.
    """
    sampling = SamplingConfig(num_generations, max_new_tokens, temperature, top_p, batch_size)
    tokenizer = load_tokenizer(model)
    policy = load_causal_lm(model, dtype).to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    path = prompt_paths(prompts, None)[0]
    chosen = load_prompts(path, tokenizer, max_prompt_length=10**9, columns=columns)[:limit]
    rollout = sample_and_score(policy, tokenizer, [p.row for p in chosen], [p.messages for p in chosen], reward,
                               sampling, seed, progress=True)
    options = dict(pair_threshold=pair_threshold, kto_mode=kto_mode, kto_threshold=kto_threshold)
    rows, dropped, empty = [], 0, 0
    for row, texts, rewards in zip(rollout.rows, rollout.texts, rollout.rewards, strict=True):
        keep = [k for k, text in enumerate(texts) if text.strip()]  # the offline readers reject empty completions
        empty += len(texts) - len(keep)
        texts, rewards = [texts[k] for k in keep], [rewards[k] for k in keep]
        selection = select(OBJECTIVE[format], rewards, **options) if len(keep) >= 2 else None
        dropped += selection is None
        rows += [] if selection is None else _rows(format, row, texts, rewards, selection)
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    meta = {
        "model": model, "format": format, "prompts": str(path), "rows": len(rows), "prompts_sampled": len(chosen),
        "dropped_prompts": dropped, "empty_completions": empty, "seed": seed, "sampling": asdict(sampling),
        "selection": options, "reward": reward_spec or describe_reward(reward), "metrics": rollout_metrics([rollout]),
        "dtype": dtype, "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "hl_lightning_version": _version(),
    }
    Path(f"{out}.meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    if not rows:
        log.warning("%s: no rows: every prompt was dropped (reward gap <= %s or empty completions)", out,
                    pair_threshold)
    log.info("Wrote %d %s rows from %d prompts to %s (%d dropped)", len(rows), format, len(chosen), out, dropped)
    return out


def _version() -> str:
    try:
        return version("hl-lightning")
    except PackageNotFoundError:
        return "unknown"


def main(args: list[str] | None = None) -> None:
    """The ``hl-lightning-sample`` command (``args=None`` reads ``sys.argv``); every option has ``--help``."""
    from jsonargparse import ActionConfigFile, ArgumentParser

    parser = ArgumentParser(prog="hl-lightning-sample", description=__doc__.split("\n\n")[0], default_env=False)
    parser.add_argument("--config", action=ActionConfigFile, help="a YAML file with any of the options below")
    parser.add_function_arguments(write_dataset, skip={"reward_spec"})
    cfg = parser.parse_args(args)
    spec = cfg.reward.as_dict()
    init = parser.instantiate_classes(cfg)
    names = [n for n in inspect.signature(write_dataset).parameters if n != "reward_spec"]
    path = write_dataset(**{n: init[n] for n in names}, reward_spec=spec)
    print(f"Wrote {path} and {path}.meta.json")


if __name__ == "__main__":
    main()
