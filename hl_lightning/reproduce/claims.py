"""A plan's results read claim by claim: for each claim of the plan, the comparisons and head-to-head win-rates
it is read from, each with its 95 % CI, its seeds and what the CI says, then how far each offline data source
is from the initial model. Written into ``results.md`` and printed by ``hl-lightning reproduce --reading``.

In the plan::

    claims:  # the paper's claim -> labels of the plan's comparisons or head_to_head entries
      "Online beats offline": ["(a) DPO: online vs offline", "(a) GRPO: online vs offline"]

A row is *higher* or *lower* only when it rests on 3 paired seeds or more and its CI excludes 0 (a win-rate: 50 %);
with fewer seeds it is a hint and gets no verdict. The reading ends with how many verdicts chance alone would
give (1 in 20 rows at 95 %, were no difference real).
"""

from __future__ import annotations

from hl_lightning.reproduce.readings import HIGH, LOW

MIN_SEEDS = 3  # paired seeds a row needs for a verdict; with fewer it is a hint


def _verdict(low: float, high: float, null: float, unit: str, seeds: int) -> str:
    """What a CI says against ``null``: higher, lower, or not resolved (with the range it still allows); a row
    of fewer than :data:`MIN_SEEDS` paired seeds gets no verdict."""
    if seeds < MIN_SEEDS:
        return f"a hint, not a claim ({seeds} paired seed{'' if seeds == 1 else 's'})"
    if low > null:
        return "**higher**"
    if high < null:
        return "**lower**"
    return f"not resolved (anything from {low:g} to {high:g}{unit} is still possible)"


def comparison_line(row: dict) -> str:
    """One comparison: b − a in points with its CI, what it rests on, and the verdict."""
    low, high = round(100 * row["ci"][0], 1), round(100 * row["ci"][1], 1)
    paired = row["paired"]
    seeds = f"{paired} paired seed{'' if paired == 1 else 's'}, b won {row['wins']}" if paired else "unpaired seeds"
    return (
        f"- {row['comparison']}: {row['b']} − {row['a']} = {100 * row['diff']:+.1f} points "
        f"[{low:+.1f}, {high:+.1f}] (95 % CI over {row.get('ci_over', 'seeds')}; {seeds}): "
        f"{_verdict(low, high, 0, ' points', paired)}"
    )


def head_to_head_line(row: dict) -> str:
    """One head-to-head win-rate of b's final answers against a's, with its CI and the verdict against 50 %."""
    low, high = round(100 * row["ci"][0], 1), round(100 * row["ci"][1], 1)
    return (
        f"- {row['comparison']}: {row['b']} wins {100 * row['win_rate']:.1f} % [{low:.1f}, {high:.1f}] of "
        f"{row['prompts']} prompts against {row['a']} (95 % CI over seeds x prompts; {row['seeds']} seeds): "
        f"{_verdict(low, high, 50, ' %', row['seeds'])}"
    )


def quality_line(label: str, summary: dict) -> str:
    """One offline data source: per role, the mean per-token log-prob, its quartiles and the share below the
    paper's worst quartile."""
    roles = [
        f"{role} {st['mean']:.2f} [{st['q1']:.2f}, {st['median']:.2f}, {st['q3']:.2f}], "
        f"{st['below_worst_quartile']:.0%} below {LOW}"
        for role, st in summary["roles"].items()
    ]
    return f"- {label}: " + "; ".join(roles)


def reading(summary: dict, claims: dict[str, list[str]]) -> list[str]:
    """The markdown lines of the claim-by-claim reading of ``summary`` (a plan's ``results.json``)."""
    rows = {r["comparison"]: (comparison_line(r), r["paired"]) for r in summary.get("comparisons") or []}
    rows |= {r["comparison"]: (head_to_head_line(r), r["seeds"]) for r in summary.get("head_to_head") or []}
    lines, judged = [], set()
    for claim, labels in claims.items():
        lines += ["", f"**The paper: {claim}**", ""]
        lines += [rows[label][0] if label in rows else f"- {label}: not run yet" for label in labels]
        judged |= {label for label in labels if label in rows and rows[label][1] >= MIN_SEEDS}
    if judged:
        lines += [
            "",
            f"{len(judged)} of these rows rest on {MIN_SEEDS} or more paired seeds; were no difference real, about "
            f"{len(judged) / 20:.1f} of them would still read higher or lower by chance (95 % CIs).",
        ]
    return lines[1:] + quality_lines(summary.get("data_quality") or {})


def quality_lines(quality: dict[str, dict]) -> list[str]:
    """The data-quality part of the reading: one line per offline data source."""
    if not quality:
        return []
    head = (
        "**Offline data sources**: mean per-token log-prob of the completions under the initial model, "
        f"[quartiles]; the paper's worst quartile is [{LOW}, {HIGH}]."
    )
    return ["", head, "", *(quality_line(label, s) for label, s in quality.items())]


def reading_markdown(summary: dict, claims: dict[str, list[str]]) -> str:
    """The reading as a ``results.md`` section, or "" for a plan without claims."""
    if not claims:
        return ""
    return "\n## Reading, claim by claim\n\n" + "\n".join(reading(summary, claims)) + "\n"
