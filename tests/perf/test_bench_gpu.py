"""benchmarks/bench_gpu.py: the whole script in its ``--tiny`` CPU mode (both arms, TRL included, and the report),
its peak table, its ~1B model and its FLOP count. Nothing here is a timing."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bench_gpu
from bench.gpu_job import FULL_CONFIG, TINY_CONFIG, bf16_peak_tflops, device_slug, step_flops

BENCHMARKS = Path(bench_gpu.__file__).resolve().parent


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory):
    """One ``--tiny`` run (2 child processes: ours, TRL), 4 steps each, the first left out."""
    out = tmp_path_factory.mktemp("bench_gpu")
    before = set((BENCHMARKS / "results").iterdir())
    report = bench_gpu.main(["--tiny", "--out-dir", str(out)])
    assert set((BENCHMARKS / "results").iterdir()) == before  # nothing written into the repository
    return report, out


def param_count(config: dict) -> int:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    with torch.device("meta"):
        model = LlamaForCausalLM(LlamaConfig(**config))
    return sum(p.numel() for p in model.parameters())  # a tied embedding once


def test_tiny_run_measures_both_arms(tiny_report):
    report, out = tiny_report
    job = report["job"]
    assert job["n_params"] == param_count(TINY_CONFIG)
    assert job["tokens_per_step"] == 2 * 2 * (8 + 8)
    assert job["flops_per_step"] == 8 * job["n_params"] * job["tokens_per_step"]
    assert job["peak_tflops"] is None and job["device_name"] is None
    for name, arm in report["arms"].items():
        assert arm["n"] == 3, name  # 4 steps, 1 warm-up
        assert arm["syncs"] == 4, name  # the reference synced at every step, in both frameworks
        assert arm["median_s"] == sorted(arm["timed"])[1]
        assert arm["tokens_per_s"] == pytest.approx(job["tokens_per_step"] / arm["median_s"], rel=1e-12)
        assert arm["achieved_tflops"] == pytest.approx(job["flops_per_step"] / arm["median_s"] / 1e12, rel=1e-12)
        assert arm["mfu"] is None and arm["peak_gpu_memory_gb"] is None  # a CPU: no peak, no GPU memory
        assert arm["sync_median_ms"] > 0 and 0 < arm["sync_pct_of_step"] < 100
        assert arm["sync_pct_of_step"] == pytest.approx(arm["sync_median_ms"] / 10 / arm["median_s"], rel=1e-12)
        assert arm["peak_rss_gb"] > 0.1
    # TRL syncs after the optimizer step: its reference is the policy, so every DPO loss is ln 2
    assert report["arms"]["trl"]["mean_loss"] == pytest.approx(math.log(2), abs=1e-6)
    assert math.isfinite(report["arms"]["ours"]["mean_loss"])
    ours, trl = report["arms"]["ours"], report["arms"]["trl"]
    comp = report["comparisons"]
    assert comp["throughput_ours_vs_trl"] == pytest.approx(ours["tokens_per_s"] / trl["tokens_per_s"], rel=1e-12)
    assert comp["memory_measure"] == "peak_rss_gb"
    assert comp["peak_memory_ours_vs_trl"] == pytest.approx(ours["peak_rss_gb"] / trl["peak_rss_gb"], rel=1e-12)
    assert report["env"]["trl"] and report["date"] and report["command"].endswith(f"--tiny --out-dir {out}")


def test_tiny_run_writes_json_and_markdown(tiny_report):
    report, out = tiny_report
    assert json.loads((out / "bench_gpu_tiny_cpu.json").read_text()) == json.loads(json.dumps(report))
    md = (out / "bench_gpu_tiny_cpu.md").read_text()
    assert "| ours |" in md and "| trl |" in md and "6 * N * tokens" in md and "sync_ref_model=True" in md
    assert "| throughput (tokens/s) |" in md


def test_peak_table_by_device_name():
    assert bf16_peak_tflops("NVIDIA H100 80GB HBM3") == 989.0  # SXM
    assert bf16_peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert bf16_peak_tflops("NVIDIA H200") == 989.0
    assert bf16_peak_tflops("NVIDIA A100-SXM4-80GB") == 312.0
    assert bf16_peak_tflops("NVIDIA L4") == 121.0
    assert bf16_peak_tflops("NVIDIA L40S") == 362.0
    assert bf16_peak_tflops("Tesla T4") is None and bf16_peak_tflops(None) is None
    assert device_slug("NVIDIA H100 80GB HBM3") == "nvidia_h100_80gb_hbm3"


def test_the_full_model_is_about_1b_and_its_flops():
    n = param_count(FULL_CONFIG)
    assert n == 1_038_682_112
    assert step_flops(n, 4 * 2 * 1024) == (6 + 2) * n * 8192


def test_gpu_mode_defaults_and_refusal_without_a_gpu(monkeypatch):
    args = bench_gpu.parse_args([])
    assert (args.steps, args.warmup, args.pairs, args.prompt_len, args.completion_len) == (30, 5, 4, 512, 512)
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(SystemExit, match=r"no CUDA GPU is visible.*--tiny"):
        bench_gpu.job_spec(args)
    with pytest.raises(SystemExit, match=r"^2$"):
        bench_gpu.parse_args(["--tiny", "--steps", "2", "--warmup", "2"])
