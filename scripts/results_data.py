"""The part of a plan's results page on the data its prepare steps made: one row per sampled or rebuilt data file
(from its ``.meta.json``, written by ``hl-lightning-sample`` or ``python -m hl_lightning.online.rebuild``) and one
per source model's held-out record (a ``*.heldout.json`` copied beside the data). Used by
``scripts/results_pages.py``."""

from __future__ import annotations

import json
from pathlib import Path


def _made(meta: dict) -> str:
    """How a data file was made, in words."""
    if "groups_meta" in meta:
        return f"rebuilt from `{Path(meta['groups']).name}` by `{meta['builder']}`"
    sampling = meta["sampling"]
    return (
        f"sampled from `{meta['model']}` ({sampling['num_generations']} answers a prompt, temperature "
        f"{sampling['temperature']:g}, {sampling['max_new_tokens']} new tokens at most), `{meta['builder']}`"
    )


def data_row(path: Path) -> str:
    """One data file's row: how it was made, prompts sampled, rows kept, the samples' mean reward, the share of
    completions cut at the token limit."""
    meta = json.loads(path.read_text(encoding="utf-8"))
    sampled = meta.get("groups_meta", meta)
    metrics = sampled["metrics"]
    name = path.name.removesuffix(".meta.json")
    return (
        f"| `{name}` | {_made(meta)} | {sampled['prompts_sampled']} | {meta['rows']} | "
        f"{metrics['reward/mean']:.3f} | {metrics['completions/clipped_ratio']:.0%} |"
    )


def model_row(path: Path) -> str:
    """One source model's row: its held-out score (and mean judge score) before and after its training."""
    record = json.loads(path.read_text(encoding="utf-8"))
    (_, before), (steps, after) = record["history"][0], record["history"][-1]
    judge = record.get("judge_history") or []
    judged = f"{judge[0][1]:.3f} → {judge[-1][1]:.3f}" if judge else "–"
    metric = record["metric"].replace("_", " ")
    return (
        f"| `{path.name.removesuffix('.heldout.json')}` | {metric} | {before:.1%} → {after:.1%} | {judged} | {steps} |"
    )


def prepared_data(out: Path) -> list[str]:
    """The page's section on ``out/data``: the data files and the source models, or nothing when there are none."""
    metas = sorted((out / "data").glob("*.meta.json"))
    models = sorted((out / "data").glob("*.heldout.json"))
    if not metas and not models:
        return []
    lines = ["## Data made for the runs", ""]
    if metas:
        lines += [
            f"From each file's `.meta.json` under `results/{out.name}/data/`:",
            "",
            "| file | how it was made | prompts sampled | rows | mean reward of the samples | cut at the token limit |",
            "|---|---|---|---|---|---|",
            *(data_row(p) for p in metas),
            "",
        ]
    if models:
        lines += [
            "Source models (the held-out record of their training, `*.heldout.json`):",
            "",
            "| model | held-out metric | before → after | mean judge score | steps |",
            "|---|---|---|---|---|",
            *(model_row(p) for p in models),
            "",
        ]
    return lines
