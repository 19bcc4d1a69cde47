"""The results pages (benchmarks/RESULTS.md, docs/results/<plan>.md) are what the committed results files give:
regenerated here and compared, so a number that drifts from its JSON fails. Also: how a plan without aggregated
results, a plan without any results and a benchmark of an unknown kind are handled."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from scripts.results_benchmarks import benchmarks_page
from scripts.results_data import prepared_data
from scripts.results_pages import ROOT, pages, plan_page, readme_page, stale

DEMO_BEGIN, DEMO_END = "<!-- demo-numbers: from results/demo/result.json -->", "<!-- /demo-numbers -->"
READING_BEGIN, READING_END = "<!-- study-reading: from results/study -->", "<!-- /study-reading -->"


def test_the_committed_results_pages_are_up_to_date():
    out_of_date = [p.relative_to(ROOT).as_posix() for p in stale()]
    assert not out_of_date, f"run .venv/bin/python scripts/results_pages.py: {out_of_date} differ"


def test_every_plan_and_the_benchmarks_have_a_page():
    written = {p.relative_to(ROOT).as_posix() for p in pages()}
    plans = {f"docs/results/{p.stem}.md" for p in (ROOT / "configs" / "reproduce").glob("*.yaml")}
    assert written == plans | {"benchmarks/RESULTS.md", "README.md"}  # the README's demo numbers


@pytest.fixture
def quick_copy(tmp_path: Path) -> Path:
    """A repository-like tree with the quick plan, its results.json and one benchmark result."""
    (tmp_path / "configs" / "reproduce").mkdir(parents=True)
    shutil.copy(ROOT / "configs" / "reproduce" / "quick.yaml", tmp_path / "configs" / "reproduce")
    (tmp_path / "results" / "quick").mkdir(parents=True)
    shutil.copy(ROOT / "results" / "quick" / "results.json", tmp_path / "results" / "quick")
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    shutil.copy(ROOT / "benchmarks" / "results" / "bench_overhead_smollm2.json", tmp_path / "benchmarks" / "results")
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    return tmp_path


def test_a_number_that_drifts_from_its_results_file_is_found(quick_copy):
    for path, text in pages(quick_copy).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert stale(quick_copy) == []
    results = quick_copy / "results" / "quick" / "results.json"
    summary = json.loads(results.read_text())
    summary["arms"][0]["final"] += 0.01
    results.write_text(json.dumps(summary))
    assert stale(quick_copy) == [quick_copy / "docs" / "results" / "quick.md"]


def test_a_plan_page_shows_the_arms_table_and_the_comparisons(quick_copy):
    _, text = plan_page(quick_copy, quick_copy / "configs" / "reproduce" / "quick.yaml")
    assert "| dpo-offline | 2e-05 | 3 | 12 | 0.150 | 0.300 [0.225, 0.350] |" in text
    assert (
        "| (a) DPO: online vs offline | dpo-offline | dpo-online | +14.2 [-5.0, +25.0] | seeds | 3 (2) | 2.59 |" in text
    )


def test_runs_not_aggregated_yet_show_their_curves(quick_copy):
    (quick_copy / "results" / "quick" / "results.json").unlink()
    run = quick_copy / "results" / "quick" / "runs" / "dpo-online" / "seed0"
    run.mkdir(parents=True)
    history = [[0, 0.15], [6, 0.3], [12, 0.45]]
    result = {"arm": "dpo-online", "seed": 0, "status": "ok", "wall_s": 600.0, "lr": "2e-05", "metric": "exact_match"}
    (run / "result.json").write_text(json.dumps({**result, "history": history}))
    _, text = plan_page(quick_copy, quick_copy / "configs" / "reproduce" / "quick.yaml")
    assert "have not been aggregated" in text and "| step | 0 | 6 | 12 |" in text
    assert "| score | 0.150 | 0.300 | 0.450 |" in text


def test_a_plan_without_results_says_so(quick_copy):
    shutil.rmtree(quick_copy / "results" / "quick")
    _, text = plan_page(quick_copy, quick_copy / "configs" / "reproduce" / "quick.yaml")
    assert "No results of this plan are committed yet" in text
    assert "| grpo-online | `configs/online/grpo.yaml` | 1 | 0, 1, 2 |" in text


def test_the_benchmarks_page_has_the_machine_and_every_table(quick_copy):
    text = benchmarks_page(quick_copy)
    date = json.loads((quick_copy / "benchmarks" / "results" / "bench_overhead_smollm2.json").read_text())["date"]
    assert f"Measured {date} on Intel(R) Xeon(R) Processor (2 CPUs, 2 torch threads)" in text  # the file's own date
    assert "torch 2.13.0+cpu" in text
    assert "| humanline step − plain step, % of plain | +5.82 [+4.52, +6.61] |" in text
    assert "| humanline | 1.171 | 0.114 | 47.0% |" in text


def test_a_benchmark_of_an_unknown_kind_is_refused(quick_copy):
    (quick_copy / "benchmarks" / "results" / "bench_mystery.json").write_text("{}")
    with pytest.raises(SystemExit, match=r"bench_mystery\.json: no table for this benchmark"):
        benchmarks_page(quick_copy)


def test_a_gpu_benchmark_result_gets_its_table(quick_copy):
    """The --tiny output of benchmarks/bench_gpu.py (the same JSON a GPU run writes) as a results-page section."""
    result = json.loads((ROOT / "tests" / "data" / "bench_gpu_tiny_cpu.json").read_text())
    (quick_copy / "benchmarks" / "results" / "bench_gpu_tiny_cpu.json").write_text(json.dumps(result))
    text = benchmarks_page(quick_copy)
    ours = result["arms"]["ours"]
    assert f"| ours | {ours['tokens_per_s']:,.0f} | {ours['median_s']:.3f} | – |" in text
    assert f"Throughput ours / TRL {result['comparisons']['throughput_ours_vs_trl']:.2f}" in text


def test_the_readme_demo_numbers_come_from_the_demo_results_file(quick_copy):
    """No results file: the README's demo block is empty; with one, its numbers are written from it."""
    empty = readme_page(quick_copy)
    assert f"{DEMO_BEGIN}\n{DEMO_END}" in empty or (ROOT / "results" / "demo" / "result.json").exists()
    run = {
        "date": "2026-12-07T10:00:00+00:00",
        "wall_s": 330.0,
        "metric": "exact_match",
        "history": [[0, 0.1525], [60, 0.1675]],
        "prompts": 400,
        "env": {"cpus": 2, "torch": "2.13.0+cpu"},
    }
    (quick_copy / "results" / "demo").mkdir(parents=True, exist_ok=True)
    (quick_copy / "results" / "demo" / "result.json").write_text(json.dumps(run))
    text = readme_page(quick_copy)
    assert "60 steps in 5.5 min of training" in text and "15.2% before, 16.8% after, on 400 questions" in text
    assert text.count(DEMO_BEGIN) == 1 and text.startswith("# hl_lightning")


def test_the_readme_reads_the_study_claim_by_claim_from_its_results_file(quick_copy):
    """No study results: the README's reading block says so; with a results.json, each claim of the study plan
    lists its comparisons (numbers and verdict from the file) or says a comparison is not run yet."""
    assert "No results of the study are committed yet" in readme_page(quick_copy).split(READING_BEGIN)[1]
    shutil.copy(ROOT / "configs" / "reproduce" / "study.yaml", quick_copy / "configs" / "reproduce")
    row = {"a": "dpo-offline", "b": "dpo-online", "diff": 0.081, "ci": [0.032, 0.127], "paired": 3, "wins": 3}
    summary = {
        "runs": 6,
        "comparisons": [{"comparison": "(a) DPO: online vs offline", "ci_over": "seeds x prompts", **row}],
        "data_quality": {"arithmetic (a)": {"roles": {"chosen": QUALITY}}},
    }
    (quick_copy / "results" / "study").mkdir(parents=True)
    (quick_copy / "results" / "study" / "results.json").write_text(json.dumps(summary))
    block = readme_page(quick_copy).split(READING_BEGIN)[1].split(READING_END)[0]
    assert "(6 runs;" in block and "**The paper: (a) online alignment beats offline alignment" in block
    assert (
        "- (a) DPO: online vs offline: dpo-online − dpo-offline = +8.1 points [+3.2, +12.7] (95 % CI over seeds x "
        "prompts; 3 paired seeds, b won 3): **higher**"
    ) in block
    assert "- (a) GRPO: online vs offline: not run yet" in block
    assert "- arithmetic (a): chosen -0.74 [-1.12, -0.55, -0.43], 23% below -1.03" in block


QUALITY = {"mean": -0.74, "q1": -1.12, "median": -0.55, "q3": -0.43, "below_worst_quartile": 0.23}


def test_the_data_a_plan_made_is_tabled_from_its_meta_files(tmp_path):
    """A sampled file, the pairs rebuilt from it and a source model's held-out record, each a row from its file."""
    assert prepared_data(tmp_path) == []
    data = tmp_path / "data"
    data.mkdir()
    sampling = {"num_generations": 4, "temperature": 0.7, "max_new_tokens": 32}
    metrics = {"reward/mean": 0.066, "completions/clipped_ratio": 0.584}
    sampled = {"model": "smollm2", "builder": "GroupBuilder()", "rows": 268, "prompts_sampled": 1400}
    sampled |= {"sampling": sampling, "metrics": metrics}
    (data / "g.jsonl.meta.json").write_text(json.dumps(sampled))
    rebuilt = {"groups": "x/g.jsonl", "groups_meta": sampled, "builder": "PairBuilder()", "rows": 260}
    (data / "p.jsonl.meta.json").write_text(json.dumps(rebuilt))
    record = {"metric": "win_rate", "history": [[0, 0.5], [120, 1.0]], "judge_history": [[0, 0.424], [120, 0.997]]}
    (data / "m.heldout.json").write_text(json.dumps(record))
    lines = prepared_data(tmp_path)
    assert (
        "| `g.jsonl` | sampled from `smollm2` (4 answers a prompt, temperature 0.7, 32 new tokens at most), "
        "`GroupBuilder()` | 1400 | 268 | 0.066 | 58% |"
    ) in lines
    assert "| `p.jsonl` | rebuilt from `g.jsonl` by `PairBuilder()` | 1400 | 260 | 0.066 | 58% |" in lines
    assert "| `m` | win rate | 50.0% → 100.0% | 0.424 → 0.997 | 120 |" in lines
