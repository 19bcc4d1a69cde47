"""Write the results pages from the committed results files.

- ``benchmarks/RESULTS.md`` from ``benchmarks/results/*.json`` (``scripts/results_benchmarks.py``);
- ``docs/results/<plan>.md`` for every plan in ``configs/reproduce/``, from ``results/<plan>/``: its
  ``results.json`` (the tables of ``hl-lightning reproduce``, drawn by the same functions), its figures, and its
  ``README.md`` when it has one; a plan whose runs are not aggregated yet shows each committed run's held-out
  curve; a plan with no results says so.

Run after adding results: ``.venv/bin/python scripts/results_pages.py`` (``--check``: write nothing, exit 1 when a
committed page differs from what the results files give; ``tests/test_results_pages.py`` runs it).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from hl_lightning.reproduce.aggregate import comparison_table, curve_table, markdown, tuning_table  # noqa: E402
from hl_lightning.reproduce.claims import reading, reading_markdown  # noqa: E402
from hl_lightning.reproduce.plan import Arm  # noqa: E402
from hl_lightning.reproduce.readings import data_quality_table, head_to_head_table  # noqa: E402
from scripts.results_benchmarks import benchmarks_page  # noqa: E402
from scripts.results_data import prepared_data  # noqa: E402


def demote(text: str) -> str:
    """Every markdown heading one level down (a results table's ``#`` title becomes a section of the page)."""
    return re.sub(r"^(#+) ", r"#\1 ", text, flags=re.M)


def plan_arms(plan: dict) -> list[str]:
    """What a plan runs: one row per arm with its base config, stage and seeds."""
    lines = ["| arm | base config | stage | seeds |", "|---|---|---|---|"]
    for arm in plan["arms"]:
        seeds = arm.get("seeds") or plan["seeds"]
        base = plan["bases"][arm["base"]]
        lines.append(f"| {arm['name']} | `{base}` | {arm.get('stage', Arm.stage)} | {', '.join(map(str, seeds))} |")
    return lines


def settings(plan: dict, path: str) -> list[str]:
    """The plan's file, the command that runs it, and its run length and scoring."""
    every = f", every {plan['eval_every']} steps" if plan.get("eval_every") else ""
    return [
        f"Plan file: `{path}`. Run or resume it with `hl-lightning reproduce --plan {path}`.",
        "",
        f"Every run trains {plan['steps']} optimizer steps (unless its arm says otherwise) and scores the held-out "
        f"set ({plan.get('eval_limit') or 'all'} prompts) before training{every} and at the end. Seeds: "
        f"{', '.join(map(str, plan['seeds']))}.",
        "",
    ]


def figures(out: Path, name: str) -> list[str]:
    """The plan's figures, as served by the documentation site (``scripts/mkdocs_hooks.py``)."""
    lines = []
    for png in sorted(out.glob("*.png")):
        lines += [f"![{name}: {png.stem}](../assets/results/{name}/{png.name})", ""]
    return ["## Figures", "", *lines] if lines else []


def aggregated(out: Path, plan: dict) -> list[str]:
    """The tables of ``results.json`` (arms, comparisons, head to head), data quality and the lr grid."""
    summary = json.loads((out / "results.json").read_text(encoding="utf-8"))
    stages = {a["name"]: a.get("stage", Arm.stage) for a in plan["arms"]}
    missing = {arm: stages.get(arm, Arm.stage) for arm in summary["not_run"]}
    quality, _ = data_quality_table(out, plan.get("data_quality") or {})
    text = (
        markdown(summary["plan"], summary["arms"], missing)
        + reading_markdown(summary, plan.get("claims") or {})
        + curve_table(summary["arms"])
        + comparison_table(summary["comparisons"])
        + head_to_head_table(summary.get("head_to_head") or [])
        + quality
        + tuning_table(out)
    )
    body = demote(text).split("\n", 1)[1]  # the page has its own title
    return [f"## Results (`results/{plan['name']}/results.json`, {summary['runs']} runs)", body]


def curves(out: Path, plan: dict) -> list[str]:
    """A plan not aggregated yet: each committed run's held-out score by step (its ``result.json``)."""
    lines = [
        "## Runs so far",
        "",
        f"The runs below have not been aggregated into a table yet: `hl-lightning reproduce --plan "
        f"configs/reproduce/{plan['name']}.yaml --aggregate-only` writes `results/{plan['name']}/results.md`.",
        "",
    ]
    for path in sorted(out.glob("runs/*/seed*/result.json")):
        run = json.loads(path.read_text(encoding="utf-8"))
        lines += [
            f"### {run['arm']}, seed {run['seed']} ({run['status']}, {run['wall_s'] / 60:.0f} min, lr {run['lr']})",
            "",
            f"Held-out {run['metric'].replace('_', ' ')} by optimizer step (`{path.relative_to(out.parent.parent)}`):",
            "",
            "| step | " + " | ".join(str(step) for step, _ in run["history"]) + " |",
            "|---|" + "---|" * len(run["history"]),
            "| score | " + " | ".join(f"{score:.3f}" for _, score in run["history"]) + " |",
            "",
        ]
    return lines


def plan_page(root: Path, plan_path: Path) -> tuple[Path, str]:
    """``docs/results/<plan>.md`` for one plan file."""
    plan = yaml.safe_load(plan_path.read_text(encoding="utf-8"))
    name, out = plan["name"], root / "results" / plan["name"]
    lines = [
        f"# Results of plan `{name}`",
        "",
        "Written by `scripts/results_pages.py` from the committed files under "
        f"`results/{name}/` (do not edit by hand). How to read these tables: [Reproducing the paper](../reproduce.md).",
        "",
        *settings(plan, plan_path.relative_to(root).as_posix()),
    ]
    if (out / "README.md").exists():
        lines += [demote((out / "README.md").read_text(encoding="utf-8")), ""]
    lines += prepared_data(out)
    if (out / "results.json").exists():
        lines += aggregated(out, plan)
    elif list(out.glob("runs/*/seed*/result.json")):
        lines += curves(out, plan)
    else:
        lines += ["## Results", "", f"No results of this plan are committed yet (`results/{name}/`).", ""]
    lines += figures(out, name)
    lines += ["## Arms", "", *plan_arms(plan)]
    return root / "docs" / "results" / f"{name}.md", "\n".join(lines).rstrip("\n") + "\n"


def demo_numbers(root: Path) -> str:
    """The README's lines on a measured ``make demo`` run (``results/demo/result.json``), or "" before one."""
    path = root / "results" / "demo" / "result.json"
    if not path.exists():
        return ""
    run = json.loads(path.read_text(encoding="utf-8"))
    (_, before), (steps, after) = run["history"][0], run["history"][-1]
    env = run["env"]
    return (
        f"Measured ([`results/demo/result.json`](results/demo/result.json), {run['date'][:10]}, {env['cpus']} CPU "
        f"cores, torch {env['torch']}): {steps} steps in {run['wall_s'] / 60:.1f} min of training (installing and "
        f"converting the model come on top the first time); held-out {run['metric'].replace('_', ' ')} "
        f"{before:.1%} before, {after:.1%} after, on {run['prompts']} questions (one score on 400 questions "
        "carries about ±5 points of noise)."
    )


def study_reading(root: Path) -> str:
    """The README's claim-by-claim reading of the study (``results/study/results.json``), or a line saying there
    are no results yet."""
    path = root / "results" / "study" / "results.json"
    if not path.exists():
        return "No results of the study are committed yet (`results/study/results.json`)."
    plan = yaml.safe_load((root / "configs" / "reproduce" / "study.yaml").read_text(encoding="utf-8"))
    summary = json.loads(path.read_text(encoding="utf-8"))
    head = (
        f"From [`results/study/results.json`](results/study/results.json) ({summary['runs']} runs; tables and "
        "figures: [study results](docs/results/study.md)):"
    )
    return "\n".join([head, "", *reading(summary, plan.get("claims") or {})])


BLOCKS = {
    "demo-numbers: from results/demo/result.json": demo_numbers,
    "study-reading: from results/study": study_reading,
}


def readme_page(root: Path) -> str:
    """README.md with each generated block (``<!-- name: source -->`` ... ``<!-- /name -->``) written anew."""
    text = (root / "README.md").read_text(encoding="utf-8")
    for marker, write in BLOCKS.items():
        begin, end = f"<!-- {marker} -->", f"<!-- /{marker.split(':')[0]} -->"
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        body = write(root)
        text = head + begin + ("\n" + body + "\n" if body else "\n") + end + tail
    return text


def pages(root: Path = ROOT) -> dict[Path, str]:
    """Every results page: path -> the text the committed results files give."""
    written = {root / "benchmarks" / "RESULTS.md": benchmarks_page(root), root / "README.md": readme_page(root)}
    for plan_path in sorted((root / "configs" / "reproduce").glob("*.yaml")):
        path, text = plan_page(root, plan_path)
        written[path] = text
    return written


def stale(root: Path = ROOT) -> list[Path]:
    """The results pages whose committed text differs from what the results files give."""
    return [p for p, text in pages(root).items() if not p.exists() or p.read_text(encoding="utf-8") != text]


def main(argv: list[str]) -> int:
    """Write the pages, or with ``--check`` list the stale ones and return 1."""
    if "--check" in argv:
        out_of_date = stale()
        for path in out_of_date:
            print(f"error: {path.relative_to(ROOT)} is out of date: run .venv/bin/python scripts/results_pages.py")
        return 1 if out_of_date else 0
    for path, text in pages().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
