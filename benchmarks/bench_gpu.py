"""Humanline DPO on one GPU, hl_lightning vs TRL's DPOTrainer: tokens/s, MFU, reference-sync time, peak memory.

    .venv/bin/pip install -e '.[bench]'             # TRL
    .venv/bin/python benchmarks/bench_gpu.py        # ~1B random Llama, bf16-mixed, one CUDA GPU
    .venv/bin/python benchmarks/bench_gpu.py --peak-tflops 989      # a GPU missing from the peak table
    .venv/bin/python benchmarks/bench_gpu.py --tiny # the whole script on a CPU in seconds (a toy Llama)

The model is a randomly initialised Llama of 1.04B parameters (the shape of Llama 3.2 1B with a 32000-token
vocabulary: hidden 2048, 16 layers, 32 heads / 8 KV heads, MLP 8192, tied embeddings); nothing is downloaded and
the data is synthetic token ids (no tokenizer). Both arms build the same seeded model in fp32 and train it with
``bf16-mixed`` autocast: ours, DPOModule with humanline clipping and RefSyncCallback(every_n_steps=1) under a
Lightning Trainer; TRL's DPOTrainer with its ``sync_ref_model`` every step (alpha 1, a full copy; it copies after
the optimizer step where humanline copies before it, so the cost per step is the same, the reference one step
apart). Same pairs, batch, lengths, fused AdamW, beta and step count; each arm in its own process, one after the
other. Every step and every sync is timed with ``torch.cuda.synchronize()`` at both ends; the first ``--warmup``
steps are left out. fp32 matrix products (our LM head runs outside autocast) use torch's default precision (no TF32)
in both.

MFU = model FLOPs per step / median seconds per step / the GPU's bf16 dense peak, with model FLOPs = 6 N tokens
(policy forward and backward) + 2 N tokens (reference forward). The peak comes from a table by
``torch.cuda.get_device_name()`` (H100 SXM 989, H100 PCIe 756, H200 989, A100 312, L40S 362, L4 121 TFLOP/s) or
``--peak-tflops``; an unknown GPU or a CPU reports MFU null.

Results: ``benchmarks/results/bench_gpu_<device>.{json,md}``; with ``--tiny`` a temporary directory (printed) or
``--out-dir``. The last line printed is ``bench_gpu tokens_per_s ours=<n> trl=<n> ratio=<ours/TRL> mfu ours=<f>
trl=<f>``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:  # run as a script it is there already; loaded by importlib it may not be
    sys.path.insert(0, _HERE)

from bench import RESULTS, ROOT  # noqa: E402  (also sets HF_HUB_OFFLINE / TOKENIZERS_PARALLELISM)
from bench.gpu_job import FULL_CONFIG, TINY_CONFIG, bf16_peak_tflops, device_slug, step_flops, tokens_per_step  # noqa: E402
from bench.gpu_report import FLOPS_FORMULA, arm_summary, closing_line, comparisons, markdown  # noqa: E402
from bench.report import environment  # noqa: E402

ARMS = ["ours", "trl"]
# option -> (GPU default, --tiny default)
SIZES = {"steps": (30, 4), "warmup": (5, 1), "pairs": (4, 2), "prompt_len": (512, 8), "completion_len": (512, 8)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiny", action="store_true", help="a toy Llama on the CPU, 4 steps per arm: a smoke run")
    for name, (full, tiny) in SIZES.items():
        p.add_argument(
            f"--{name.replace('_', '-')}", type=int, default=None, help=f"default {full} ({tiny} with --tiny)"
        )
    p.add_argument("--lr", type=float, default=1e-6)
    p.add_argument("--beta", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--peak-tflops", type=float, default=None, help="the GPU's bf16 dense peak (default: the table)")
    p.add_argument("--out-dir", type=Path, default=None, help="default benchmarks/results (--tiny: a temp dir)")
    p.add_argument("--child", choices=ARMS, default=None, help=argparse.SUPPRESS)
    p.add_argument("--spec", type=Path, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for name, (full, tiny) in SIZES.items():
        if getattr(args, name) is None:
            setattr(args, name, tiny if args.tiny else full)
    if args.warmup >= args.steps:
        p.error("--warmup must be smaller than --steps")
    return args


def job_spec(args: argparse.Namespace) -> dict:
    """What both arms' processes run: the model, the data sizes, the optimizer and the device."""
    if not args.tiny:
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("bench_gpu.py: no CUDA GPU is visible; run it on a GPU machine, or pass --tiny.")
    return {
        "device": "cpu" if args.tiny else "cuda",
        "precision": "bf16-mixed",
        "config": TINY_CONFIG if args.tiny else FULL_CONFIG,
        **{name: getattr(args, name) for name in SIZES},
        "lr": args.lr,
        "beta": args.beta,
        "seed": args.seed,
    }


def run_child(arm: str, spec: dict, work: Path) -> dict:
    """Run one arm in a fresh Python process; return its result (what :func:`bench.gpu_arms.run_arm` gives)."""
    spec_path, out_path = work / f"{arm}.spec.json", work / f"{arm}.result.json"
    spec_path.write_text(json.dumps({**spec, "out": str(out_path), "work_dir": str(work / arm)}))
    started = time.perf_counter()
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", arm, "--spec", str(spec_path)]
    env = {"CUDA_VISIBLE_DEVICES": "0", **os.environ}  # one GPU: TRL's Trainer would spread over all it sees
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0 or not out_path.exists():
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-8000:])
        raise SystemExit(f"bench_gpu.py: the {arm} arm failed (exit {proc.returncode}); its output is above.")
    return {**json.loads(out_path.read_text()), "wall_s": time.perf_counter() - started}


def build_report(args: argparse.Namespace, argv: list[str], spec: dict, results: dict) -> dict:
    """The report of both arms' results (see ``bench.gpu_report``)."""
    import torch

    device_name = results["ours"]["device_name"]
    table_peak = bf16_peak_tflops(device_name)
    peak = args.peak_tflops or table_peak
    source = "--peak-tflops" if args.peak_tflops else "table" if table_peak else "no peak known: MFU null"
    tokens = tokens_per_step(spec)
    job = {
        **{k: v for k, v in spec.items() if k != "config"},
        "model_config": spec["config"],
        "device_name": device_name,
        "n_params": results["ours"]["n_params"],
        "tokens_per_step": tokens,
        "flops_per_step": step_flops(results["ours"]["n_params"], tokens),
        "flops_formula": FLOPS_FORMULA,
        "peak_tflops": peak,
        "peak_source": source,
    }
    arms = {arm: arm_summary(results[arm], job, args.warmup) for arm in ARMS}
    return {
        "tag": "tiny_cpu" if args.tiny else device_slug(device_name),
        "command": " ".join(["python benchmarks/bench_gpu.py", *argv]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "job": job,
        "env": {**environment(), "cuda": torch.version.cuda},
        "arms": arms,
        "comparisons": comparisons(arms),
    }


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.child:
        return child(args.child, json.loads(args.spec.read_text()))
    spec = job_spec(args)
    with tempfile.TemporaryDirectory(prefix="hl-bench-gpu-") as tmp:
        results = {}
        for arm in ARMS:
            print(f"[bench_gpu] {arm} ...", flush=True)
            results[arm] = run_child(arm, spec, Path(tmp))
    report = build_report(args, argv, spec, results)
    out_dir = args.out_dir or (Path(tempfile.mkdtemp(prefix="hl-bench-gpu-out-")) if args.tiny else RESULTS)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"bench_gpu_{report['tag']}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=1))
    stem.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))
    print(f"[bench_gpu] wrote {stem}.json and .md")
    print(closing_line(report))
    return report


def child(arm: str, spec: dict) -> dict:
    """The child process: run ``arm`` and write its result to ``spec["out"]``."""
    from bench.gpu_arms import run_arm

    result = run_arm(arm, spec)
    Path(spec["out"]).write_text(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
