"""benchmarks/bench_checkpointing.py: its defaults and its comparison of the two settings (nothing is run or timed
here; the script runs its settings in processes of their own)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bench_checkpointing as ckpt


def setting(peak: float, before: float, times: list[float], losses: list[float]) -> dict:
    result = {
        "peak_rss_bytes": int(peak * ckpt.GB),
        "rss_before_train_bytes": int(before * ckpt.GB),
        "step_times": times,
        "losses": losses,
        "scored_tokens": [80, 90, 85, 70],
        "head_chunk_tokens": 341,
        "wall_s": 9.0,
        "load_avg_1min": [1.0, 2.0],
    }
    return ckpt.summary(result, warmup=1)


def test_defaults_are_smollm2_at_512_tokens_with_every_shortcut():
    args = ckpt.parse_args([])
    assert (args.model, args.pad_to_length, args.long_part, args.pairs, args.steps, args.warmup) == (
        "smollm2",
        512,
        "prompt",
        2,
        4,
        1,
    )
    assert ckpt.SETTINGS == {"off": False, "on": True}
    with pytest.raises(SystemExit, match=r"^2$"):
        ckpt.parse_args(["--steps", "2", "--warmup", "2"])


def test_saving_ratios_and_report():
    """Off: peak 3 GiB, 1 GiB before training, 1.0 s/step; on: peak 2.5 GiB, 1.2 s/step, the same losses."""
    off = setting(3.0, 1.0, [9.0, 1.0, 1.1, 0.9], [0.69, 0.68, 0.67, 0.66])
    on = setting(2.5, 1.0, [9.0, 1.2, 1.3, 1.1], [0.69, 0.68, 0.67, 0.66 * (1 + 1e-6)])
    assert off["median_s"] == 1.0 and on["median_s"] == 1.2 and off["n"] == 3  # the warm-up step left out
    c = ckpt.compare(off, on)
    assert c["saving_gb"] == pytest.approx(0.5, rel=1e-6)
    assert c["saving_pct"] == pytest.approx(100 * 0.5 / 3, rel=1e-6)
    assert c["memory_ratio"] == pytest.approx(2.5 / 3, rel=1e-6)
    assert c["training_memory_ratio"] == pytest.approx(1.5 / 2, rel=1e-6)
    assert c["step_time_ratio"] == pytest.approx(1.2, rel=1e-12)
    assert c["max_loss_rel_diff"] == pytest.approx(1e-6, rel=1e-6)
    report = {
        "tag": "m_L512",
        "command": "python benchmarks/bench_checkpointing.py",
        "date": "2026-01-01T00:00:00+00:00",
        "model": "m",
        "spec": {"pairs": 2, "mean_tokens": 500.0, "max_tokens": 512, "steps": 4, "warmup": 1},
        "env": {"torch": "t", "transformers": "x", "lightning": "l", "python": "3", "cpus": 2, "torch_threads": 2},
        "settings": {"off": off, "on": on},
        "comparisons": c,
    }
    md = ckpt.markdown(report)
    assert "| off | 3.000 | 1.000 | 1.00 |" in md and "| on | 2.500 | 1.000 | 1.20 |" in md
    assert "| peak RSS saved | 0.500 GiB (16.7 %) |" in md and "| median step time on / off | 1.20 |" in md
    assert "off 1.0 / 2.0; on 1.0 / 2.0" in md
    assert "at most 90 tokens per step here, so it ran in one piece (it chunks past 341)" in md
