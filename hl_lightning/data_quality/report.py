"""Summaries of the scores: per role, against the paper's worst quartile, as a table, JSON, JSON Lines and a PNG.

The paper (Liu et al., arXiv 2509.24207) measured the mean per-token log-prob of the offline completions under the
initial reference; offline data in the worst quartile of that measure, [-1.03, -0.36], trained significantly
worse. The data's own value is the mean over its completions of each completion's mean per-token log-prob.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

import torch

from hl_lightning.data_quality.score import Score
from hl_lightning.extras import pyplot

PAPER_WORST_QUARTILE = (-1.03, -0.36)  # the paper's worst quartile of the mean per-token log-prob of offline data
ALL = "all"  # the row of the summary over every completion


def role_stats(scores: list[Score]) -> dict[str, float | int]:
    """Count, mean, quartiles (linear interpolation), range, the shares below the paper's worst quartile
    (``below_worst_quartile``: < -1.03) and in or below it (``in_or_below_worst_quartile``: <= -0.36), the share
    truncated by the length limits, and the mean number of completion tokens scored."""
    values = torch.tensor([s.mean_logp for s in scores], dtype=torch.float64)
    q1, median, q3 = torch.quantile(values, torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64)).tolist()
    low, high = PAPER_WORST_QUARTILE
    return {
        "n": len(scores),
        "mean": values.mean().item(),
        "q1": q1,
        "median": median,
        "q3": q3,
        "min": values.min().item(),
        "max": values.max().item(),
        "below_worst_quartile": (values < low).double().mean().item(),
        "in_or_below_worst_quartile": (values <= high).double().mean().item(),
        "truncated": sum(s.truncated for s in scores) / len(scores),
        "mean_tokens": sum(s.tokens for s in scores) / len(scores),
    }


def verdict(mean: float) -> str:
    """One line placing the data's mean per-token log-prob against the paper's worst quartile."""
    low, high = PAPER_WORST_QUARTILE
    if mean < low:
        return "below the paper's worst quartile: humanline's assumption may not hold"
    if mean <= high:
        return "in the paper's worst quartile: data this far from the model trained significantly worse in the paper"
    return "above the paper's worst quartile: the data is as close to the model as the paper's better offline data"


def summarize(scores: list[Score], **context: object) -> dict:
    """The JSON summary: ``context`` (model, data, options), the paper's worst quartile, ``roles`` (role -> its
    :func:`role_stats`, in order of appearance, plus ``all``) and the :func:`verdict` of the overall mean."""
    if not scores:
        raise ValueError("no completions to summarize.")
    roles = {role: role_stats([s for s in scores if s.role == role]) for role in dict.fromkeys(s.role for s in scores)}
    roles[ALL] = role_stats(scores)
    return {
        **context,
        "paper_worst_quartile": list(PAPER_WORST_QUARTILE),
        "roles": roles,
        "verdict": verdict(float(roles[ALL]["mean"])),
    }


def table(summary: dict) -> str:
    """The summary as a short table: a title, one line per role, then the paper's range and the verdict."""
    low, high = PAPER_WORST_QUARTILE
    head = f"{'role':<12}{'n':>7}{'mean':>9}{'q1':>9}{'median':>9}{'q3':>9}{f'< {low}':>10}{f'<= {high}':>10}"
    title = f"{summary.get('data')} under {summary.get('model')}: mean per-token log-prob of each completion"
    lines = [title, head + f"{'truncated':>11}"]
    for role, stats in summary["roles"].items():
        numbers = "".join(f"{stats[key]:>9.3f}" for key in ("mean", "q1", "median", "q3"))
        shares = "".join(f"{stats[key]:>10.1%}" for key in ("below_worst_quartile", "in_or_below_worst_quartile"))
        lines.append(f"{role:<12}{stats['n']:>7}{numbers}{shares}{stats['truncated']:>11.1%}")
    lines.append(f"The paper's worst quartile of offline data: [{low}, {high}] (it trained significantly worse).")
    lines.append(f"Verdict: {summary['verdict']}")
    return "\n".join(lines)


def write_json(summary: dict, path: Path) -> Path:
    """Write the summary as indented JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return path


def write_rows(scores: list[Score], path: Path) -> Path:
    """Write one JSON object per completion (:class:`~hl_lightning.data_quality.score.Score`'s fields), in file
    order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(asdict(s)) + "\n" for s in scores), encoding="utf-8")
    return path


def histogram(scores: list[Score], path: Path, title: str) -> Path:
    """A PNG histogram of the per-completion values, one colour per role, with the paper's worst quartile shaded
    (needs the ``plots`` extra: matplotlib)."""
    plt = pyplot("hl-lightning data-quality (its histogram)")
    values = [s.mean_logp for s in scores]
    low, high = PAPER_WORST_QUARTILE
    lo, hi = min(*values, low) - 0.05, max(*values, high) + 0.05
    bins = torch.linspace(lo, hi, max(10, min(60, math.ceil(math.sqrt(len(values))) * 2))).tolist()
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.axvspan(low, high, color="tab:red", alpha=0.12, label=f"paper's worst quartile [{low}, {high}]")
    for role in dict.fromkeys(s.role for s in scores):
        ax.hist([s.mean_logp for s in scores if s.role == role], bins=bins, alpha=0.6, label=role)
    ax.set_xlabel("mean per-token log-prob of the completion under the model")
    ax.set_ylabel("completions")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
