"""benchmarks/bench_train.py: its defaults, its data (identical rows for both frameworks) and its report.

The benchmark itself is never timed here (speed is measured by the script, not by tests)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_train.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_train", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_defaults_are_the_issue_setup(bench):
    args = bench.parse_args([])
    assert (args.mode, args.model, args.steps, args.warmup, args.pairs, args.kto_items) == \
        ("trl", "smollm2", 25, 5, 2, 4)
    assert bench.arms_for(args) == ["ours-dpo", "trl-dpo", "ours-kto", "trl-kto"]
    assert bench.arms_for(bench.parse_args(["--mode", "humanline"])) == ["ours-dpo-plain", "ours-dpo-humanline"]
    with pytest.raises(SystemExit, match="^2$"):  # argparse's usage error
        bench.parse_args(["--steps", "3", "--warmup", "3"])


@pytest.mark.parametrize("part", ["prompt", "completion"])
def test_padded_data_reaches_the_length_without_exceeding_it(bench, tokenizer, tmp_path, part):
    args = bench.parse_args(["--pad-to-length", "160", "--long-part", part])
    data = bench.build_data(args, tokenizer, tmp_path)
    assert 140 <= data["max_tokens"] <= 160
    assert data["mean_tokens"] > 140
    pairs = Path(data["files"]["pairs"]).read_text().splitlines()
    items = Path(data["files"]["unpaired"]).read_text().splitlines()
    assert len(pairs) == 400 and len(items) == 800


def test_report_and_closing_lines(bench):
    arms = {name: {**bench.summarize([1.0, 2.0, 3.0] if name.startswith("ours") else [4.0, 5.0, 6.0]),
                   "peak_rss_gb": 3.0 if name.startswith("ours") else 6.0}
            for name in ("ours-dpo", "trl-dpo", "ours-kto", "trl-kto")}
    arms["ours-dpo-plain"] = {**bench.summarize([2.0]), "peak_rss_gb": 3.0}
    arms["ours-dpo-humanline"] = {**bench.summarize([2.04]), "peak_rss_gb": 3.0, "sync_median_ms": 31.0}
    comp = bench.compare(arms)
    assert comp["dpo"]["speedup_vs_trl"] == pytest.approx(2.5)
    assert comp["dpo"]["memory_vs_trl"] == pytest.approx(0.5)
    assert comp["humanline"]["overhead_pct"] == pytest.approx(2.0)
    report = {"mode": "all", "comparisons": comp}
    assert bench.summary_lines(report) == ["humanline_overhead=2.0% sync_ms=31.0", "speedup_vs_trl dpo=2.50 kto=2.50"]
    assert bench.summary_lines({**report, "mode": "humanline"}) == ["humanline_overhead=2.0% sync_ms=31.0"]
