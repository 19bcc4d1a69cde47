"""``hl-lightning reproduce --plan configs/reproduce/<plan>.yaml``: a resumable sweep, its table and figures.

Each (arm, seed) of the plan runs in its own process, one after another (never two torch jobs at once), as an
MLflow run of the experiment ``reproduce-<plan>`` in ``results/<plan>/mlflow.db``, tagged with the task, arm,
seed and lr (and, as every run, objective, data mode, clip, k, N). Rerun the same command after an interruption:
finished runs are skipped, the interrupted one restarts. Then ``results/<plan>/results.{json,md}`` and the
figures are written (``--aggregate-only`` redoes just that). ``--reading`` prints what the committed
``results.json`` says, claim by claim (:mod:`hl_lightning.reproduce.claims`), and runs nothing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hl_lightning.extras import require
from hl_lightning.reproduce.aggregate import aggregate, bootstrap_ci
from hl_lightning.reproduce.claims import reading
from hl_lightning.reproduce.plan import Plan
from hl_lightning.reproduce.runner import run_plan

__all__ = ["Plan", "aggregate", "bootstrap_ci", "main", "run_plan"]


def main(args: list[str]) -> None:
    """The ``reproduce`` subcommand of ``hl-lightning``."""
    parser = argparse.ArgumentParser(prog="hl-lightning reproduce", description=__doc__.split("\n\n")[0])
    parser.add_argument("--plan", required=True, help="the plan YAML (configs/reproduce/*.yaml)")
    parser.add_argument("--out", help="results directory (default results/<plan name>)")
    parser.add_argument("--max-runs", type=int, help="run at most this many of the missing runs, then aggregate")
    parser.add_argument("--aggregate-only", action="store_true", help="only rewrite the table and figures")
    parser.add_argument("--reading", action="store_true", help="print the results' claim-by-claim reading; run nothing")
    options = parser.parse_args(args)
    if not options.reading:  # fail before the sweep, not after it
        require("matplotlib", "plots", "hl-lightning reproduce (its figures)")
    plan = Plan.load(options.plan)
    out = Path(options.out or Path("results") / plan.name)
    if options.reading:
        print(reading_text(plan, out))
        return
    if options.aggregate_only:
        results = run_plan(plan, out, max_runs=0)
    else:
        results = run_plan(plan, out, max_runs=options.max_runs)
    summary = aggregate(plan, out, results)
    print(
        f"{summary['runs']} of {len(plan.jobs())} runs; not run yet: {len(summary['not_run'])} arms; "
        f"table: {out / 'results.md'}; figures: "
        f"{', '.join(Path(p).name for p in summary['figures'])}"
    )


def reading_text(plan: Plan, out: Path) -> str:
    """What ``--reading`` prints: the claim-by-claim reading of ``out/results.json``, or why there is none."""
    path = out / "results.json"
    if not path.exists():
        return f"No results of plan {plan.name!r} yet ({path} is missing): nothing to read."
    if not plan.claims:
        return f"Plan {plan.name!r} names no claims to read; its tables are in {out / 'results.md'}."
    summary = json.loads(path.read_text(encoding="utf-8"))
    head = f"What plan {plan.name!r} found, claim by claim ({path}, {summary['runs']} runs):"
    return "\n".join([head, "", *reading(summary, plan.claims)])
