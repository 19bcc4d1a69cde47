"""Humanline's cost, measured cleanly: plain and humanline DPO steps alternate in one process, on the same batches.

    .venv/bin/python benchmarks/bench_overhead.py                      # SmolLM2, 2 pairs, 40 pairs of steps
    .venv/bin/python benchmarks/bench_overhead.py --model tiny-random --pairs-of-steps 4 --warmup 1   # smoke

One DPOModule (policy + reference, ``share_prompt``), one fused AdamW, freed memory retained as a CPU fit does
(``hl_lightning.runtime``). Each pair of steps trains twice on the same batch: once plain (no clip, no sync) and
once humanline (``ClipLogRatio`` [-1.5, 1.5] in the loss and the reference synced between backward and
``optimizer.step()``, as ``RefSyncCallback(every_n_steps=1)`` does), in the order A B, B A, A B, ... so neither arm
always runs second. A step is timed from the forward to the end of ``zero_grad``. Both arms keep training the same
weights, so slow drift (the policy moving, the machine warming) hits them alike. Reported: the median of the per-
pair differences (humanline - plain) / plain with a bootstrap 95 % CI, the sync's own milliseconds, and each arm's
model FLOPs per step as a fraction of this CPU's measured fp32 matmul peak (``bench/flops.py``). Results:
``benchmarks/results/bench_overhead_<tag>.{json,md}``; the last line is ``humanline_overhead=<pct>% ci=[lo, hi]
sync_pct=<pct>%``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from itertools import cycle, islice
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import RESULTS
from bench.data import model_dir
from bench.flops import matmul_peak_flops, mean_step_flops
from bench.report import environment, median_ci


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2", help="'smollm2' (embedded), 'tiny-random', or a local directory")
    p.add_argument("--pairs", type=int, default=2, help="DPO pairs per step")
    p.add_argument("--pairs-of-steps", type=int, default=40, help="(plain, humanline) step pairs, warm-up included")
    p.add_argument("--warmup", type=int, default=3, help="first pairs of steps left out of the statistics")
    p.add_argument("--lr", type=float, default=1e-6)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tag", default=None, help="name of the result files (default: the model)")
    p.add_argument("--out-dir", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    if args.warmup >= args.pairs_of_steps:
        p.error("--warmup must be smaller than --pairs-of-steps")
    return args


def setup(args: argparse.Namespace, work: Path) -> tuple:
    """The module, its optimizer, the plain and the humanline objective, and the batches of every pair."""
    import torch

    from hl_lightning.data import PreferenceDataModule
    from hl_lightning.modules import DPOModule
    from hl_lightning.objectives import ClipLogRatio, DPOLoss
    from hl_lightning.runtime import retain_freed_memory

    retain_freed_memory()  # as a module's setup does on a CPU fit (no Trainer here)
    torch.manual_seed(args.seed)
    mdir = str(model_dir(args.model, work))
    module = DPOModule(model=mdir, beta=0.1)
    module.train()
    optimizer = torch.optim.AdamW(
        [p for p in module.policy.parameters() if p.requires_grad], lr=args.lr, weight_decay=0.0, fused=True
    )
    data = PreferenceDataModule(
        tokenizer=mdir, batch_size=args.pairs, max_length=128, max_prompt_length=96, seed=args.seed
    )
    data.setup("fit")
    batches = list(islice(cycle(data.train_dataloader()), args.pairs_of_steps))
    clip = ClipLogRatio(log_eps_P=-1.5, log_eps_R=1.5)
    objectives = {"plain": DPOLoss(beta=0.1), "humanline": DPOLoss(beta=0.1, clip=clip)}
    return module, optimizer, objectives, batches


def timed_step(module, optimizer, objective, batch, humanline: bool) -> tuple[float, float]:
    """One optimizer step; (seconds of the whole step, seconds of the sync in it)."""
    start = time.perf_counter()
    module.objective = objective
    module.compute_loss(batch).loss.backward()
    sync = 0.0
    if humanline:
        t0 = time.perf_counter()
        module.sync_reference()
        sync = time.perf_counter() - t0
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start, sync


def measure(module, optimizer, objectives, batches) -> list[dict]:
    """Every pair of steps on its batch, the arms' order alternating; per pair both times and the sync's."""
    pairs = []
    for i, batch in enumerate(batches):
        order = ("plain", "humanline") if i % 2 == 0 else ("humanline", "plain")
        record = {}
        for arm in order:
            record[arm], sync = timed_step(module, optimizer, objectives[arm], batch, arm == "humanline")
            record["sync"] = record.get("sync", 0.0) + sync
        pairs.append(record)
    return pairs


def report(args: argparse.Namespace, pairs: list[dict], flops: dict, peak: float) -> dict:
    """The statistics of the timed pairs (warm-up dropped) and the fraction of peak of each arm."""
    timed = pairs[args.warmup :]
    diffs = [100 * (p["humanline"] - p["plain"]) / p["plain"] for p in timed]
    sync_pct = [100 * p["sync"] / p["plain"] for p in timed]
    arms = {}
    for arm in ("plain", "humanline"):
        median = statistics.median(p[arm] for p in timed)
        arms[arm] = {
            "median_s": median,
            "model_tflop": flops["step"] / 1e12,
            "fraction_of_peak": flops["step"] / median / peak,
        }
    return {
        "overhead_pct": {"median": statistics.median(diffs), "ci": median_ci(diffs), "pairs": diffs},
        "sync_ms": {"median": 1000 * statistics.median(p["sync"] for p in timed)},
        "sync_pct": {"median": statistics.median(sync_pct), "ci": median_ci(sync_pct)},
        "arms": arms,
        "peak_gflops": peak / 1e9,
        "tokens_per_step": flops["tokens"],
    }


def markdown(result: dict) -> str:
    o, s = result["overhead_pct"], result["sync_pct"]
    lines = [
        f"# Humanline overhead: {result['tag']}",
        "",
        f"`{result['command']}`",
        "",
        f"{len(o['pairs'])} timed pairs of steps (plain, humanline) on the same batches, alternating order, one "
        f"process; {result['config']['pairs']} DPO pairs per step, {result['tokens_per_step']:.0f} real tokens "
        f"per step (each shared prompt once). torch {result['env']['torch']}, {result['env']['cpus']} CPUs "
        f"({result['env'].get('cpu')}), {result['env']['torch_threads']} threads; measured fp32 matmul peak "
        f"{result['peak_gflops']:.0f} GFLOP/s.",
        "",
        "| quantity | median | bootstrap 95 % CI |",
        "|---|---|---|",
        f"| humanline step − plain step, % of plain | {o['median']:+.2f} | [{o['ci'][0]:+.2f}, {o['ci'][1]:+.2f}] |",
        f"| sync, % of a plain step | {s['median']:.2f} | [{s['ci'][0]:.2f}, {s['ci'][1]:.2f}] |",
        f"| sync, ms | {result['sync_ms']['median']:.1f} | |",
        "",
        "| arm | median s/step | model TFLOP per step | fraction of measured fp32 peak |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {name} | {a['median_s']:.3f} | {a['model_tflop']:.3f} | {a['fraction_of_peak']:.1%} |"
        for name, a in result["arms"].items()
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="hl-bench-overhead-") as tmp:
        module, optimizer, objectives, batches = setup(args, Path(tmp))
        peak = matmul_peak_flops()
        pairs = measure(module, optimizer, objectives, batches)
    result = {
        "tag": args.tag or args.model,
        "command": " ".join(["python", "benchmarks/bench_overhead.py", *(argv if argv is not None else sys.argv[1:])]),
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "env": environment(),
        **report(args, pairs, mean_step_flops(module.policy, batches), peak),
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stem = args.out_dir / f"bench_overhead_{result['tag']}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    o, s = result["overhead_pct"], result["sync_pct"]
    print(f"humanline_overhead={o['median']:.2f}% ci=[{o['ci'][0]:.2f}, {o['ci'][1]:.2f}] sync_pct={s['median']:.2f}%")


if __name__ == "__main__":
    main()
