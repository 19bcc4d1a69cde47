"""A plan's results read claim by claim: for each claim of the plan, the comparisons and head-to-head win-rates
it is read from, each with its 95 % CI, its seeds and what the CI says, then how far each offline data source
is from the initial model. Written into ``results.md`` and printed by ``hl-lightning reproduce --reading``.

In the plan::

    claims:  # the paper's claim -> labels of the plan's comparisons or head_to_head entries
      "Online beats offline": ["(a) DPO: online vs offline", "(a) GRPO: online vs offline"]

A comparison is *higher* or *lower* only when its CI excludes 0 (a win-rate: when it excludes 50 %); a comparison
of fewer than two paired seeds is marked as a hint, never a claim.
"""

from __future__ import annotations

HINT = " (one seed: a hint, not a claim)"


def _verdict(low: float, high: float, null: float, unit: str) -> str:
    """What a CI says against ``null``: higher, lower, or no difference resolved (with the bounds it allows)."""
    if low > null:
        return "**higher**"
    if high < null:
        return "**lower**"
    return f"no difference resolved (the CI spans {null:g}{unit})"


def comparison_line(row: dict) -> str:
    """One comparison: b − a in points with its CI, what it rests on, and the verdict."""
    low, high = 100 * row["ci"][0], 100 * row["ci"][1]
    paired = row["paired"]
    seeds = f"{paired} paired seeds, b won {row['wins']}" if paired else "unpaired seeds"
    over = row.get("ci_over", "seeds")
    line = (
        f"- {row['comparison']}: {row['b']} − {row['a']} = {100 * row['diff']:+.1f} points "
        f"[{low:+.1f}, {high:+.1f}] (95 % CI over {over}; {seeds}): {_verdict(low, high, 0, ' points')}"
    )
    return line + (HINT if paired < 2 else "")


def head_to_head_line(row: dict) -> str:
    """One head-to-head win-rate of b's final answers against a's, with its CI and the verdict against 50 %."""
    low, high = 100 * row["ci"][0], 100 * row["ci"][1]
    return (
        f"- {row['comparison']}: {row['b']} wins {100 * row['win_rate']:.1f} % [{low:.1f}, {high:.1f}] of "
        f"{row['prompts']} prompts against {row['a']} (95 % CI over seeds x prompts; {row['seeds']} seeds): "
        f"{_verdict(low, high, 50, ' %')}" + (HINT if row["seeds"] < 2 else "")
    )


def quality_line(label: str, summary: dict) -> str:
    """One offline data source: per role, the mean per-token log-prob, its quartiles and the share below -1.03."""
    roles = [
        f"{role} {st['mean']:.2f} [{st['q1']:.2f}, {st['median']:.2f}, {st['q3']:.2f}], "
        f"{st['below_worst_quartile']:.0%} below -1.03"
        for role, st in summary["roles"].items()
    ]
    return f"- {label}: " + "; ".join(roles)


def reading(summary: dict, claims: dict[str, list[str]]) -> list[str]:
    """The markdown lines of the claim-by-claim reading of ``summary`` (a plan's ``results.json``)."""
    rows = {r["comparison"]: comparison_line(r) for r in summary.get("comparisons") or []}
    rows |= {r["comparison"]: head_to_head_line(r) for r in summary.get("head_to_head") or []}
    lines = []
    for claim, labels in claims.items():
        lines += ["", f"**{claim}**", ""]
        lines += [rows.get(label, f"- {label}: not run yet") for label in labels]
    if quality := summary.get("data_quality"):
        lines += [
            "",
            "**Offline data sources**: mean per-token log-prob of the completions under the initial model, "
            "[quartiles]; the paper's worst quartile is [-1.03, -0.36].",
            "",
        ]
        lines += [quality_line(label, s) for label, s in quality.items()]
    return lines[1:]


def reading_markdown(summary: dict, claims: dict[str, list[str]]) -> str:
    """The reading as a ``results.md`` section, or "" for a plan without claims."""
    if not claims:
        return ""
    return "\n## Reading, claim by claim\n\n" + "\n".join(reading(summary, claims)) + "\n"
