"""Readings beside a plan's results table: how far each offline data source is from the initial model, and
head-to-head win-rates between two arms' final answers, paired by seed and prompt, with a bootstrap CI."""

from __future__ import annotations

import json
import random
import statistics
from dataclasses import dataclass
from pathlib import Path

from hl_lightning.data_quality.report import PAPER_WORST_QUARTILE

LOW, HIGH = PAPER_WORST_QUARTILE


def data_quality_table(out: Path, sources: dict[str, str]) -> tuple[str, dict]:
    """The plan's ``data_quality`` summaries (label -> JSON under ``out``, written by ``hl-lightning data-quality``)
    as a markdown table (one line per source and role) and as a dict; a missing summary is listed as such."""
    if not sources:
        return "", {}
    lines = [
        "\n## Offline data: mean per-token log-prob of each completion under the initial model\n",
        f"The paper's worst quartile of offline data is [{LOW}, {HIGH}] (it trained significantly worse).\n",
        f"| source | role | n | mean | quartiles | below {LOW} | truncated |",
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


def _record(out: Path, arm: str, seed: int) -> dict | None:
    """One run's ``heldout.json``, or None when it has none."""
    path = out / "runs" / arm / f"seed{seed}" / "heldout.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def _by_prompt(prompts: list, values: list[float]) -> dict[str, float] | None:
    """Prompt (as text: a chat prompt is a list) -> value; None when empty or when two prompts coincide."""
    keyed = {str(p): float(v) for p, v in zip(prompts, values, strict=True)}
    return keyed if keyed and len(keyed) == len(values) else None


def final_scores(out: Path, arm: str, seed: int) -> dict[str, float] | None:
    """Prompt -> score of the arm's final answers in one seed's run (``heldout.json``), or None when absent."""
    answers = (_record(out, arm, seed) or {}).get("final_answers") or []
    return _by_prompt([a["prompt"] for a in answers], [a["score"] for a in answers])


def final_values(out: Path, arm: str, seed: int) -> dict[str, float] | None:
    """Prompt -> each prompt's share of the run's final held-out metric (their mean is the metric): the score for
    exact match and reward, the win against the initial answer (1, 1/2 for a tie, 0) for win-rate; None when the
    run kept no per-prompt answers (or, for win-rate, no initial scores, which follow the answers' order)."""
    record = _record(out, arm, seed) or {}
    answers = record.get("final_answers") or []
    scores = [a["score"] for a in answers]
    if record.get("metric") == "win_rate":
        initial = record.get("initial_scores") or []
        if len(initial) != len(answers):
            return None
        scores = [win_share([y], [x]) for x, y in zip(initial, scores, strict=True)]
    return _by_prompt([a["prompt"] for a in answers], scores)


def win_share(b: list[float], a: list[float]) -> float:
    """Share of prompts where b's score beats a's, a tie counting one half."""
    return statistics.fmean(1.0 if y > x else 0.5 if y == x else 0.0 for x, y in zip(a, b, strict=True))


def mean_gap(b: list[float], a: list[float]) -> float:
    """b's mean score minus a's, on the same prompts."""
    return statistics.fmean(b) - statistics.fmean(a)


def interval(draws: list[float], level: float) -> tuple[float, float]:
    """The ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of bootstrap ``draws`` (percentile method)."""
    ranked = sorted(draws)
    return ranked[int((1 - level) / 2 * len(ranked))], ranked[int((1 + level) / 2 * len(ranked)) - 1]


@dataclass
class Paired:
    """Two arms' per-prompt values in the seeds both kept them: per seed ``(a's, b's)`` in one prompt order;
    ``crossed`` when every seed scored the same prompts (then one prompt draw serves every seed of a resample)."""

    seeds: list[tuple[list[float], list[float]]]
    crossed: bool


def two_level(
    paired: Paired, statistic, level: float = 0.95, draws: int = 2000, seed: int = 0
) -> tuple[float, tuple[float, float]]:
    """The mean over seeds of ``statistic(b, a)`` and a two-level bootstrap CI: seeds resampled, then prompts,
    a prompt drawn with both arms' values on it (paired). Crossed (every seed on the same prompts): one prompt
    draw per resample, shared by its seeds, so a question that is easy for b in every seed counts as one question;
    otherwise a prompt draw per drawn seed. The CI holds the run-to-run and the question-sampling noise."""
    rng, seeds = random.Random(seed), paired.seeds
    estimate = statistics.fmean(statistic(b, a) for a, b in seeds)
    means = []
    for _ in range(draws):
        drawn = rng.choices(seeds, k=len(seeds))
        shared = rng.choices(range(len(seeds[0][0])), k=len(seeds[0][0])) if paired.crossed else None
        values = []
        for a, b in drawn:
            idx = shared or rng.choices(range(len(a)), k=len(a))
            values.append(statistic([b[i] for i in idx], [a[i] for i in idx]))
        means.append(statistics.fmean(values))
    return estimate, interval(means, level)


def paired_win_rate(paired: Paired, draws: int = 2000, seed: int = 0) -> dict:
    """Mean over seeds of b's win share against a, with the two-level bootstrap CI of :func:`two_level`."""
    estimate, ci = two_level(paired, win_share, draws=draws, seed=seed)
    return {"win_rate": estimate, "ci": ci}


def paired_prompts(out: Path, pair: dict, seeds: list[int], values=final_scores, strict: bool = False) -> Paired:
    """The per-prompt ``values`` of both arms of ``pair`` in each of ``seeds`` where both kept them, on the prompts
    both answered (``strict``: no seed at all unless, in every seed, both answered the same prompts)."""
    scored, prompt_sets = [], []
    for s in seeds:
        a, b = values(out, pair["a"], s), values(out, pair["b"], s)
        if strict and (not a or not b or set(a) != set(b)):
            return Paired([], crossed=False)
        if a and b and (shared := sorted(set(a) & set(b))):
            scored.append(([a[p] for p in shared], [b[p] for p in shared]))
            prompt_sets.append(shared)
    return Paired(scored, crossed=all(p == prompt_sets[0] for p in prompt_sets))


def head_to_head(out: Path, pairs: dict[str, dict], runs_by_arm: dict[str, list[dict]]) -> list[dict]:
    """Each ``{label: {a: arm, b: arm}}`` with final answers in shared seeds: b's win-rate against a (prompts both
    answered; judge or exact-match scores), its CI (:func:`paired_win_rate`), the seeds and prompts used."""
    rows = []
    for label, pair in pairs.items():
        seeds = sorted(
            {r["seed"] for r in runs_by_arm.get(pair["a"], [])} & {r["seed"] for r in runs_by_arm.get(pair["b"], [])}
        )
        if (paired := paired_prompts(out, pair, seeds)).seeds:
            rows.append(
                {
                    "comparison": label,
                    **pair,
                    **paired_win_rate(paired),
                    "seeds": len(paired.seeds),
                    "prompts": len(paired.seeds[0][0]),
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
