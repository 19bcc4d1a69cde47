"""Readings beside a plan's results table: how far each offline data source is from the initial model, and
head-to-head win-rates between two arms' final answers, paired by seed and prompt, with a bootstrap CI."""

from __future__ import annotations

import json
import random
import statistics
from pathlib import Path


def data_quality_table(out: Path, sources: dict[str, str]) -> tuple[str, dict]:
    """The plan's ``data_quality`` summaries (label -> JSON under ``out``, written by ``hl-lightning data-quality``)
    as a markdown table (one line per source and role) and as a dict; a missing summary is listed as such."""
    if not sources:
        return "", {}
    lines = [
        "\n## Offline data: mean per-token log-prob of each completion under the initial model\n",
        "The paper's worst quartile of offline data is [-1.03, -0.36] (it trained significantly worse).\n",
        "| source | role | n | mean | quartiles | below -1.03 | truncated |",
        "|---|---|---|---|---|---|---|",
    ]
    found = {}
    for label, rel in sources.items():
        path = out / rel
        if not path.exists():
            lines.append(f"| {label} | not measured yet ({rel}) | | | | | |")
            continue
        found[label] = summary = json.loads(path.read_text(encoding="utf-8"))
        for role, st in summary["roles"].items():
            quartiles = f"[{st['q1']:.2f}, {st['median']:.2f}, {st['q3']:.2f}]"
            lines.append(
                f"| {label} | {role} | {st['n']} | {st['mean']:.2f} | {quartiles} | "
                f"{st['below_worst_quartile']:.0%} | {st['truncated']:.0%} |"
            )
    return "\n".join(lines) + "\n", found


def final_scores(out: Path, arm: str, seed: int) -> dict[str, float] | None:
    """Prompt -> score of the arm's final answers in one seed's run (``heldout.json``), or None when absent."""
    path = out / "runs" / arm / f"seed{seed}" / "heldout.json"
    if not path.exists():
        return None
    answers = json.loads(path.read_text(encoding="utf-8")).get("final_answers") or []
    return {a["prompt"]: float(a["score"]) for a in answers} or None


def final_values(out: Path, arm: str, seed: int) -> dict[str, float] | None:
    """Prompt -> each prompt's share of the run's final held-out metric (their mean is the metric): the score for
    exact match and reward, the win against the initial answer (1, 1/2 for a tie, 0) for win-rate; None when the
    run kept no per-prompt answers (or, for win-rate, no initial scores)."""
    path = out / "runs" / arm / f"seed{seed}" / "heldout.json"
    if not path.exists():
        return None
    record = json.loads(path.read_text(encoding="utf-8"))
    answers = record.get("final_answers") or []
    if record.get("metric") != "win_rate":
        return {a["prompt"]: float(a["score"]) for a in answers} or None
    initial = record.get("initial_scores") or []
    if len(initial) != len(answers):
        return None
    return {a["prompt"]: win_share([a["score"]], [x]) for a, x in zip(answers, initial, strict=True)} or None


def win_share(b: list[float], a: list[float]) -> float:
    """Share of prompts where b's score beats a's, a tie counting one half."""
    return statistics.fmean(1.0 if y > x else 0.5 if y == x else 0.0 for x, y in zip(a, b, strict=True))


def mean_gap(b: list[float], a: list[float]) -> float:
    """b's mean score minus a's, on the same prompts."""
    return statistics.fmean(b) - statistics.fmean(a)


def two_level(
    seeds: list[tuple[list[float], list[float]]], statistic, draws: int = 2000, seed: int = 0
) -> tuple[float, tuple[float, float]]:
    """The mean over seeds of ``statistic(b, a)``, each seed's ``(a scores, b scores)`` on the same prompts, and a
    two-level bootstrap 95 % CI: seeds resampled, then prompts within each drawn seed (paired: a prompt is drawn
    with both arms' scores), so the CI holds both the run-to-run and the question-sampling noise."""
    rng = random.Random(seed)
    estimate = statistics.fmean(statistic(b, a) for a, b in seeds)
    means = []
    for _ in range(draws):
        values = []
        for a, b in rng.choices(seeds, k=len(seeds)):
            idx = rng.choices(range(len(a)), k=len(a))
            values.append(statistic([b[i] for i in idx], [a[i] for i in idx]))
        means.append(statistics.fmean(values))
    means.sort()
    return estimate, (means[int(0.025 * draws)], means[int(0.975 * draws) - 1])


def paired_win_rate(seeds: list[tuple[list[float], list[float]]], draws: int = 2000, seed: int = 0) -> dict:
    """Mean over seeds of b's win share against a, each seed's ``(a scores, b scores)`` on the same prompts, with
    the two-level bootstrap CI of :func:`two_level`."""
    estimate, ci = two_level(seeds, win_share, draws, seed)
    return {"win_rate": estimate, "ci": ci}


def paired_prompts(out: Path, pair: dict, seeds: list[int], values=final_scores) -> list[tuple[list, list]]:
    """Per seed where both arms of ``pair`` kept per-prompt ``values``: ``(a's, b's)`` on the prompts both
    answered, in one order."""
    scored = []
    for s in seeds:
        a, b = values(out, pair["a"], s), values(out, pair["b"], s)
        if a and b and (shared := sorted(set(a) & set(b))):
            scored.append(([a[p] for p in shared], [b[p] for p in shared]))
    return scored


def head_to_head(out: Path, pairs: dict[str, dict], runs_by_arm: dict[str, list[dict]]) -> list[dict]:
    """Each ``{label: {a: arm, b: arm}}`` with final answers in shared seeds: b's win-rate against a (prompts both
    answered; judge or exact-match scores), its CI (:func:`paired_win_rate`), the seeds and prompts used."""
    rows = []
    for label, pair in pairs.items():
        seeds = sorted(
            {r["seed"] for r in runs_by_arm.get(pair["a"], [])} & {r["seed"] for r in runs_by_arm.get(pair["b"], [])}
        )
        if scored := paired_prompts(out, pair, seeds):
            rows.append(
                {
                    "comparison": label,
                    **pair,
                    **paired_win_rate(scored),
                    "seeds": len(scored),
                    "prompts": len(scored[0][0]),
                }
            )
    return rows


def head_to_head_table(rows: list[dict]) -> str:
    """The head-to-head win-rates as markdown."""
    if not rows:
        return ""
    lines = [
        "\n## Head to head (b's final answers against a's, same prompts and seed; a tie counts one half)\n",
        "| comparison | a | b | b's win-rate [95 % CI] | seeds | prompts |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        ci = f"[{r['ci'][0]:.1%}, {r['ci'][1]:.1%}]"
        lines.append(
            f"| {r['comparison']} | {r['a']} | {r['b']} | {r['win_rate']:.1%} {ci} | {r['seeds']} | {r['prompts']} |"
        )
    return "\n".join(lines) + "\n"
