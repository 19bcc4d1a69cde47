"""benchmarks/bench_train.py: its defaults, its data (identical rows for both frameworks) and its report.

The benchmark itself is never timed here (speed is measured by the script, not by tests)."""

from __future__ import annotations

import importlib.util
import json
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
    assert (args.mode, args.model, args.steps, args.warmup, args.pairs, args.kto_items) == (
        "trl",
        "smollm2",
        25,
        5,
        2,
        4,
    )
    assert bench.arms_for(args) == ["ours-dpo", "trl-dpo", "ours-kto", "trl-kto", "trl-dpo-retain", "ours-dpo-noretain"]
    assert bench.arms_for(bench.parse_args(["--mode", "humanline"])) == ["ours-dpo-plain", "ours-dpo-humanline"]
    with pytest.raises(SystemExit, match=r"^2$"):  # argparse's usage error
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


def arm(bench, times, rss, **extra):
    return {**bench.summarize(times), "timed": times, "peak_rss_gb": rss, "mean_tokens": 50.0, "wall_s": 1.0, **extra}


def test_ratios_are_medians_of_interleaved_rounds_with_a_ci(bench):
    """3 rounds: TRL/ours DPO ratios 2.0, 2.5, 3.0 (median 2.5, CI within them); memory 0.5; humanline +2 %."""
    rounds = []
    for trl_s in (4.0, 5.0, 6.0):
        rounds.append(
            {
                "ours-dpo": arm(bench, [2.0], 3.0),
                "trl-dpo": arm(bench, [trl_s], 6.0),
                "ours-dpo-plain": arm(bench, [2.0], 3.0),
                "ours-dpo-humanline": arm(bench, [2.04], 3.0, sync_median_ms=31.0),
            }
        )
    comp = bench.compare(rounds)
    assert comp["dpo"]["speedup_vs_trl"]["rounds"] == [2.0, 2.5, 3.0]
    assert comp["dpo"]["speedup_vs_trl"]["median"] == pytest.approx(2.5)
    low, high = comp["dpo"]["speedup_vs_trl"]["ci"]
    assert 2.0 <= low <= 2.5 <= high <= 3.0 and low < high
    assert comp["dpo"]["memory_vs_trl"]["median"] == pytest.approx(0.5)
    assert comp["humanline"]["overhead_pct"]["median"] == pytest.approx(2.0)
    assert "kto" not in comp
    report = {"mode": "all", "comparisons": comp}
    assert bench.summary_lines(report) == [
        "humanline_overhead=2.00%",
        "speedup_vs_trl dpo=2.50 kto=n/a dpo_vs_trl_same_allocator=n/a",
    ]
    merged = bench.merge_rounds(rounds)
    assert merged["trl-dpo"]["round_median_s"] == [4.0, 5.0, 6.0] and merged["trl-dpo"]["median_s"] == 5.0


def test_allocator_comparisons(bench):
    """ours 2 s, ours without retained memory 2.4 s, TRL 5 s, TRL with it 4 s: retain speeds ours up 1.2x,
    TRL 1.25x, and ours is 2.0x TRL-with-retain; memory ours / ours-noretain = 3 / 2.5."""
    rounds = [
        {
            "ours-dpo": arm(bench, [2.0], 3.0),
            "trl-dpo": arm(bench, [5.0], 6.0),
            "trl-dpo-retain": arm(bench, [4.0], 6.0),
            "ours-dpo-noretain": arm(bench, [2.4], 2.5),
        }
    ]
    comp = bench.compare(rounds)["dpo"]
    assert comp["speedup_vs_trl"]["median"] == pytest.approx(2.5)
    assert comp["speedup_vs_trl_retain"]["median"] == pytest.approx(2.0)
    assert comp["retain_speedup"]["median"] == pytest.approx(1.2)
    assert comp["trl_retain_speedup"]["median"] == pytest.approx(1.25)
    assert comp["retain_memory"]["median"] == pytest.approx(1.2)
    assert bench.summary_lines({"mode": "trl", "comparisons": bench.compare(rounds)}) == [
        "speedup_vs_trl dpo=2.50 kto=n/a dpo_vs_trl_same_allocator=2.00"
    ]


def test_lora_comparisons(bench):
    rounds = [
        {
            "ours-dpo-lora-humanline": arm(bench, [1.0], 2.0, sync_median_ms=5.0),
            "ours-dpo-humanline": arm(bench, [1.5], 4.0),
            "trl-dpo-peft": arm(bench, [2.0], 3.0),
            "trl-dpo": arm(bench, [3.0], 5.0),
        }
    ]
    comp = bench.compare(rounds)["lora"]
    assert comp["memory_vs_trl_full"]["median"] == pytest.approx(0.4)
    assert comp["speedup_vs_trl_peft"]["median"] == pytest.approx(2.0)
    assert comp["sync_pct_of_step"]["median"] == pytest.approx(0.5)  # 5 ms of a 1 s step
    assert bench.summary_lines({"mode": "lora", "comparisons": bench.compare(rounds)}) == [
        "lora_vs_trl memory_vs_full=0.40 speedup_vs_peft=2.00 sync_pct=0.50"
    ]


def test_grpo_groups_of_4_and_8_share_their_prompt_and_context(bench, tokenizer, tmp_path):
    """--mode grpo: each group has 4 (8) completions under one prompt, the long context in the system turn."""
    args = bench.parse_args(["--mode", "grpo", "--pad-to-length", "160"])
    assert bench.arms_for(args) == ["ours-grpo4-noshare", "ours-grpo4", "ours-grpo8-noshare", "ours-grpo8"]
    data = bench.build_data(args, tokenizer, tmp_path)
    for size in (4, 8):
        rows = [json.loads(line) for line in Path(data["files"][f"groups{size}"]).read_text().splitlines()]
        assert len(rows) == 400
        assert {len(r["completions"]) for r in rows} == {size} and {len(r["rewards"]) for r in rows} == {size}
        assert rows[0]["prompt"][0]["role"] == "system" and rows[0]["prompt"][1]["content"] == "What is 44 + 15?"
        assert rows[0]["rewards"][:4] == [0.0, 0.0, 1.0, 0.0]
    assert rows[0]["rewards"][4:] == [0.0] * 4  # the borrowed completions answer another question


def test_grpo_share_prompt_comparisons(bench):
    rounds = [
        {
            "ours-grpo4-noshare": arm(bench, [3.0], 4.0),
            "ours-grpo4": arm(bench, [2.0], 3.0),
            "ours-grpo8-noshare": arm(bench, [6.0], 8.0),
            "ours-grpo8": arm(bench, [3.0], 4.0),
        }
    ]
    comp = bench.compare(rounds)["grpo"]
    assert comp["share_prompt_speedup_g4"]["median"] == pytest.approx(1.5)
    assert comp["share_prompt_memory_g8"]["median"] == pytest.approx(0.5)
    assert bench.summary_lines({"mode": "grpo", "comparisons": bench.compare(rounds)}) == [
        "grpo_share_prompt_speedup g4=1.50 g8=2.00"
    ]
