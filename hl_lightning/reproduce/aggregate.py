"""Aggregate a plan's runs: per arm, the final and best held-out score with a bootstrap CI over seeds, wall-clock,
generation share and steps (``results.json``, ``results.md``), and the figures a reader looks at."""

from __future__ import annotations

import json
import random
import statistics
from pathlib import Path

from hl_lightning.extras import pyplot
from hl_lightning.reproduce.claims import reading_markdown
from hl_lightning.reproduce.readings import (
    data_quality_table,
    final_values,
    head_to_head,
    head_to_head_table,
    interval,
    mean_gap,
    paired_prompts,
    two_level,
)


def bootstrap_ci(values: list[float], level: float = 0.95, draws: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean: resample ``values`` with replacement ``draws`` times (seeded); the
    ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the resampled means. One value: (v, v)."""
    if len(values) == 1:
        return values[0], values[0]
    rng = random.Random(seed)
    return interval([statistics.fmean(rng.choices(values, k=len(values))) for _ in range(draws)], level)


def difference(a: dict[int, float], b: dict[int, float], level: float = 0.95, draws: int = 2000, seed: int = 0) -> dict:
    """``b − a`` of two arms' final scores given by seed: the mean difference and a bootstrap CI. Seeds both
    arms ran are paired (one seed = one data order and rollout stream), the CI resampling their differences;
    without two shared seeds each arm is resampled on its own. ``wins``: paired seeds where b beat a."""
    shared = sorted(set(a) & set(b))
    if len(shared) >= 2:
        diffs = [b[s] - a[s] for s in shared]
        return {
            "diff": statistics.fmean(diffs),
            "ci": bootstrap_ci(diffs, level, draws, seed),
            "paired": len(shared),
            "wins": sum(d > 0 for d in diffs),
        }
    rng, xs, ys = random.Random(seed), list(a.values()), list(b.values())
    ci = interval(
        [
            statistics.fmean(rng.choices(ys, k=len(ys))) - statistics.fmean(rng.choices(xs, k=len(xs)))
            for _ in range(draws)
        ],
        level,
    )
    return {"diff": statistics.fmean(ys) - statistics.fmean(xs), "ci": ci, "paired": 0, "wins": None}


def compare(comparisons: dict[str, dict], runs_by_arm: dict[str, list[dict]], out: Path | None = None) -> list[dict]:
    """Each plan comparison ``{label: {a: arm, b: arm}}`` whose two arms have finished runs: ``b − a`` and the
    wall-clock ratio b / a of a run. Where every shared seed of both arms kept its per-prompt final scores (under
    ``out``), the CI is the two-level bootstrap of :func:`~hl_lightning.reproduce.readings.two_level` (seeds, then
    held-out prompts: ``ci_over: "seeds x prompts"``); otherwise :func:`difference`'s, over seeds only."""

    def finals(arm):
        runs = runs_by_arm.get(arm, [])
        return {r["seed"]: r["history"][-1][1] for r in runs if r["status"] == "ok" and r["history"]}

    rows = []
    for label, c in comparisons.items():
        a, b = finals(c["a"]), finals(c["b"])
        if a and b:
            row = {"comparison": label, "a": c["a"], "b": c["b"], **difference(a, b), "ci_over": "seeds"}
            rows.append(row | _per_prompt(out, c, sorted(set(a) & set(b))) | _wall(runs_by_arm, c))
    return rows


def timed_training(runs: list[dict]) -> bool:
    """Whether every run recorded its held-out scoring time (``eval_s``), so that its training time is known."""
    return all("eval_s" in r for r in runs)


def seconds(runs: list[dict], training: bool) -> float:
    """Mean seconds per run: the whole run, or (``training``) the run less its held-out scoring."""
    return statistics.fmean(r["wall_s"] - (r["eval_s"] if training else 0.0) for r in runs)


def _wall(runs_by_arm: dict[str, list[dict]], pair: dict) -> dict:
    """The wall-clock ratio b / a of training (held-out scoring excluded) where both arms' runs timed it, else of
    whole runs (``wall_of``)."""
    a, b = runs_by_arm[pair["a"]], runs_by_arm[pair["b"]]
    training = timed_training(a) and timed_training(b)
    return {"wall_ratio": seconds(b, training) / seconds(a, training), "wall_of": "training" if training else "run"}


def _per_prompt(out: Path | None, pair: dict, shared: list[int]) -> dict:
    """The two-level difference and CI when, in every shared seed, both arms kept their per-prompt final values
    on the same prompts (:func:`~hl_lightning.reproduce.readings.two_level`); {} otherwise."""
    if out is None or not shared:
        return {}
    paired = paired_prompts(out, pair, shared, values=final_values, strict=True)
    if len(paired.seeds) != len(shared):
        return {}
    diff, ci = two_level(paired, mean_gap)
    over = "seeds x prompts" if len(shared) > 1 else f"prompts (seed {shared[0]} only)"
    wins = sum(mean_gap(b, a) > 0 for a, b in paired.seeds)
    return {"diff": diff, "ci": ci, "paired": len(shared), "wins": wins, "ci_over": over}


def comparison_table(rows: list[dict]) -> str:
    """The comparisons as markdown: difference in points with its CI, paired seeds, wins, wall-clock ratio."""
    if not rows:
        return ""
    lines = [
        "",
        "## Comparisons (b − a, final held-out score, points)",
        "",
        "| comparison | a | b | b − a [95 % CI] | CI over | paired seeds (b wins) | wall-clock b / a |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        pairs = f"{r['paired']} ({r['wins']})" if r["paired"] else "unpaired"
        lines.append(
            f"| {r['comparison']} | {r['a']} | {r['b']} | {100 * r['diff']:+.1f} [{100 * r['ci'][0]:+.1f}, "
            f"{100 * r['ci'][1]:+.1f}] | {r.get('ci_over', 'seeds')} | {pairs} | {r['wall_ratio']:.2f}"
            f"{' (training)' if r.get('wall_of') == 'training' else ''} |"
        )
    return "\n".join(lines) + "\n"


def summarize_arm(runs: list[dict]) -> dict:
    """One arm's row: ``n``, failures, final / best held-out score (mean and CI over the seeds that finished),
    wall-clock, generation share (online) and steps."""
    ok = [r for r in runs if r["status"] == "ok" and r["history"]]
    finals = [r["history"][-1][1] for r in ok]
    bests = [max(v for _, v in r["history"]) for r in ok]
    share = [r["final_rollout_metrics"].get("rollout/time_frac") for r in ok]
    row = {
        "arm": runs[0]["arm"],
        "seeds": sorted(r["seed"] for r in runs),
        "failed": len(runs) - len(ok),
        "lr": runs[0].get("lr"),
        "steps": runs[0]["steps"],
        "wall_s": seconds(runs, training=False),
    }
    if timed_training(runs):
        row["train_s"] = seconds(runs, training=True)
    if ok:
        row |= {
            "final": statistics.fmean(finals),
            "final_ci": bootstrap_ci(finals),
            "best": statistics.fmean(bests),
            "best_ci": bootstrap_ci(bests),
            "before": statistics.fmean(r["history"][0][1] for r in ok),
        }
    if any(s is not None for s in share):
        row["generation_share"] = statistics.fmean(s for s in share if s is not None)
    steps = [step for step, _ in ok[0]["history"]] if ok else []
    same = [r for r in ok if [step for step, _ in r["history"]] == steps]
    if same:  # the held-out curve: the mean over the seeds at each scored step
        row["curve"] = [[step, statistics.fmean(r["history"][i][1] for r in same)] for i, step in enumerate(steps)]
    judged = [r["judge_history"][-1][1] for r in ok if r.get("judge_history")]
    if judged:  # win-rate arms: the mean judge score of the final answers
        row |= {"judge": statistics.fmean(judged), "judge_ci": bootstrap_ci(judged)}
    return row


def curve_table(rows: list[dict]) -> str:
    """Each arm's held-out score by optimizer step (mean over its seeds), one table per set of scored steps."""
    by_steps: dict[tuple, list[dict]] = {}
    for r in rows:
        if r.get("curve"):
            by_steps.setdefault(tuple(step for step, _ in r["curve"]), []).append(r)
    lines = []
    for steps, group in by_steps.items():
        lines += ["", "| arm (mean over seeds) | " + " | ".join(f"step {s}" for s in steps) + " |"]
        lines.append("|---" * (len(steps) + 1) + "|")
        lines += [f"| {r['arm']} | " + " | ".join(f"{v:.3f}" for _, v in r["curve"]) + " |" for r in group]
    return "\n## Held-out score by step\n" + "\n".join(lines) + "\n" if lines else ""


def _cell(row: dict, key: str) -> str:
    """``row[key]`` with its 95 % interval, or a dash when the row has no such value."""
    return f"{row[key]:.3f} [{row[key + '_ci'][0]:.3f}, {row[key + '_ci'][1]:.3f}]" if key in row else "–"


def _seconds_cell(row: dict) -> str:
    """Seconds per run, with its training part (held-out scoring excluded) where the runs timed it."""
    return f"{row['wall_s']:.0f}" + (f" ({row['train_s']:.0f} training)" if "train_s" in row else "")


def markdown(plan_name: str, rows: list[dict], missing: dict[str, int] | None = None) -> str:
    """The results table; a failed run is reported, never dropped; an arm of the plan with no run yet is listed
    as not run, with its stage (``missing``: arm -> stage). ``judge``: the mean judge score of the final answers
    (win-rate arms), which still separates arms when every win-rate nears 100 %."""
    header = (
        "| arm | lr | seeds | steps | before | final (95 % CI) | best (95 % CI) | judge (95 % CI) | s per run | "
        "generation share | failed |"
    )
    lines = [f"# Results of plan `{plan_name}`", "", header, "|---" * 11 + "|"]
    for r in rows:
        share = f"{r['generation_share']:.0%}" if "generation_share" in r else "–"
        before = f"{r['before']:.3f}" if "before" in r else "–"
        lines.append(
            f"| {r['arm']} | {r['lr']} | {len(r['seeds'])} | {r['steps']} | {before} | {_cell(r, 'final')} | "
            f"{_cell(r, 'best')} | {_cell(r, 'judge')} | {_seconds_cell(r)} | {share} | {r['failed']} |"
        )
    lines += [
        f"| {arm} | – | 0 | – | – | not run yet (stage {stage}) | – | – | – | – | – |"
        for arm, stage in (missing or {}).items()
    ]
    return "\n".join(lines) + "\n"


def _curves(ax, runs_by_arm: dict[str, list[dict]], x: str) -> None:
    for i, (arm, runs) in enumerate(runs_by_arm.items()):
        ok = [r for r in runs if r["status"] == "ok" and r["history"]]
        if not ok:
            continue
        steps = [s for s, _ in ok[0]["history"]]
        values = [[v for _, v in r["history"]] for r in ok if len(r["history"]) == len(steps)]
        scale = statistics.fmean(r["wall_s"] for r in ok) / max(steps[-1], 1) if x == "wall" else 1.0
        xs = [s * scale for s in steps]
        mean = [statistics.fmean(col) for col in zip(*values, strict=True)]
        ax.plot(xs, mean, color=f"C{i % 10}", label=arm)
        ax.fill_between(
            xs,
            [min(c) for c in zip(*values, strict=True)],
            [max(c) for c in zip(*values, strict=True)],
            color=f"C{i % 10}",
            alpha=0.15,
        )
    ax.set_xlabel("optimizer step" if x == "step" else "wall-clock seconds (steps scaled by the run's s/step)")
    ax.set_ylabel("held-out score")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def figures(out: Path, rows: list[dict], runs_by_arm: dict[str, list[dict]]) -> list[Path]:
    """``curves.png`` (score vs step and vs wall-clock, one line per arm, band = min..max over seeds) and
    ``arms.png`` (final score per arm with its CI)."""
    plt = pyplot("The figures of hl-lightning reproduce")
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    _curves(axes[0], runs_by_arm, "step")
    _curves(axes[1], runs_by_arm, "wall")
    fig.tight_layout()
    paths = [out / "curves.png", out / "arms.png"]
    fig.savefig(paths[0], dpi=110)
    plt.close(fig)
    scored = [r for r in rows if "final" in r]
    fig, ax = plt.subplots(figsize=(max(4, 0.9 * len(scored)), 3.5))
    ax.bar(
        range(len(scored)),
        [r["final"] for r in scored],
        color="C0",
        alpha=0.7,
        yerr=[[r["final"] - r["final_ci"][0] for r in scored], [r["final_ci"][1] - r["final"] for r in scored]],
    )
    ax.set_xticks(range(len(scored)), [r["arm"] for r in scored], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("final held-out score (95 % CI)")
    fig.tight_layout()
    fig.savefig(paths[1], dpi=110)
    plt.close(fig)
    return paths


def grouped_bars(path: Path, spec: dict, rows: dict[str, dict]) -> Path | None:
    """A bar chart of final scores with their CIs: one group per label, one bar per series. ``spec`` is a plan
    figure: ``{title, xlabel, series: {series: {label: arm}}}``; arms without a result are left out."""
    plt = pyplot("The figures of hl-lightning reproduce")
    series = {name: {str(label): arm for label, arm in arms.items()} for name, arms in spec["series"].items()}
    labels = list(dict.fromkeys(label for arms in series.values() for label in arms))
    if not any("final" in rows.get(arm, {}) for arms in series.values() for arm in arms.values()):
        return None
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(4.5, 1.1 * len(labels) * max(1, len(series) / 2)), 3.6))
    for i, (name, arms) in enumerate(series.items()):
        for j, label in enumerate(labels):
            row = rows.get(arms.get(label, ""), {})
            if "final" in row:
                low, high = row["final_ci"]
                ax.bar(
                    j + (i - (len(series) - 1) / 2) * width,
                    row["final"],
                    width,
                    color=f"C{i % 10}",
                    yerr=[[row["final"] - low], [high - row["final"]]],
                    capsize=3,
                    label=name if j == 0 else None,
                )
    ax.set_xticks(range(len(labels)), labels)
    ax.set_xlabel(spec.get("xlabel", ""))
    ax.set_ylabel("final held-out score (95 % CI)")
    ax.set_title(spec.get("title", path.stem), fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def tuning_table(out: Path) -> str:
    """The lr grid's validation scores per tuned arm (``tuning.json``), the chosen lr in bold."""
    path = out / "tuning.json"
    if not path.exists():
        return ""
    tuning = json.loads(path.read_text())
    lrs = list(dict.fromkeys(lr for t in tuning["arms"].values() for lr in t["scores"]))
    lines = [
        "",
        f"## Learning rate (final score on the validation split, seed {tuning['seed']})",
        "",
        "| arm | " + " | ".join(lrs) + " | chosen |",
        "|---|" + "---|" * (len(lrs) + 1),
    ]
    for arm, t in tuning["arms"].items():
        cells = ["failed" if t["scores"].get(lr) is None else f"{t['scores'][lr]:.3f}" for lr in lrs]
        edge = f" (the grid's {t['edge']} edge: a value beyond it may be better)" if t.get("edge") else ""
        lines.append(f"| {arm} | " + " | ".join(cells) + f" | {t['chosen']:g}{edge} |")
    return "\n".join(lines) + "\n"


def aggregate(plan, out: Path, results: list[dict]) -> dict:
    """Write ``results.json``, ``results.md`` (arms, the claim-by-claim reading, the plan's comparisons, the lr
    grid) and the figures (curves, arms and the plan's ``figures``) under ``out``; return the summary. ``plan``:
    the :class:`Plan`."""
    runs_by_arm: dict[str, list[dict]] = {}
    for r in results:
        runs_by_arm.setdefault(r["arm"], []).append(r)
    rows = [summarize_arm(runs) for runs in runs_by_arm.values()]
    missing = {a.name: a.stage for a in plan.arms if a.name not in runs_by_arm}
    comparisons = compare(plan.comparisons, runs_by_arm, out)
    summary = {
        "plan": plan.name,
        "arms": rows,
        "runs": len(results),
        "not_run": list(missing),
        "comparisons": comparisons,
    }
    quality_md, summary["data_quality"] = data_quality_table(out, plan.data_quality)
    summary["head_to_head"] = head_to_head(out, plan.head_to_head, runs_by_arm)
    (out / "results.json").write_text(json.dumps(summary, indent=1))
    tables = (
        curve_table(rows) + comparison_table(comparisons) + head_to_head_table(summary["head_to_head"]) + quality_md
    )
    reading = reading_markdown(summary, plan.claims)
    (out / "results.md").write_text(markdown(plan.name, rows, missing) + reading + tables + tuning_table(out))
    paths = figures(out, rows, runs_by_arm)
    by_arm = {r["arm"]: r for r in rows}
    paths += [p for name, spec in plan.figures.items() if (p := grouped_bars(out / f"{name}.png", spec, by_arm))]
    summary["figures"] = [str(p) for p in paths]
    return summary
