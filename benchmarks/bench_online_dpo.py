"""Online DPO speed: hl_lightning (N=1) vs TRL's OnlineDPOTrainer with transformers generation, on this CPU.

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python benchmarks/bench_online_dpo.py                  # SmolLM2, 2 prompts x 2 completions, 3 rounds
    .venv/bin/python benchmarks/bench_online_dpo.py --model tiny-random --steps 3 --warmup 1 --rounds 1   # smoke

Both arms: the same model directory, the shipped arithmetic prompts, 2 completions per prompt (TRL's fixed
number), 2 prompts per step, the same max new tokens, temperature, top-p, lr (constant, fused AdamW, no weight
decay), DPO beta, fp32, and the same reward (``bench.online_dpo.TieBreakReward``). Each arm runs in its own
process, ``--rounds`` times interleaved (A B A B ...). Per step: the wall clock between step ends (rollout
included); generation tokens/s as in ``bench_online.py``. The ratio is the median of the per-round ratios (TRL
s/step / ours) with a bootstrap 95 % CI. Results: ``benchmarks/results/bench_online_dpo_<tag>.{json,md}``; the
last line is ``online_speedup_vs_trl dpo=<ratio>``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import RESULTS
from bench.online_cli import checked, online_parser, run_rounds, serve_child
from bench.online_dpo import ARMS, run_ours, run_trl
from bench.report import environment, stat


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = online_parser(__doc__, beta=0.1, beta_help="DPO beta")
    p.add_argument("--out-dir", type=Path, default=RESULTS)
    return checked(p, argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if not serve_child(args, {"ours": run_ours, "trl": run_trl}):
        write(args, argv, run_rounds(__file__, args, ARMS, num_generations=2))


def write(args: argparse.Namespace, argv: list[str] | None, rounds: list[dict]) -> None:
    speedup = stat([r["trl-dpo-online"]["median_s"] / r["ours-dpo-online"]["median_s"] for r in rounds])
    pairs = [n for r in rounds for n in r["ours-dpo-online"]["pairs"]]
    report = {
        "command": " ".join(["python", "benchmarks/bench_online_dpo.py", *(argv or sys.argv[1:])]),
        "config": {k: v for k, v in vars(args).items() if k not in ("child", "spec", "out_dir")},
        "env": environment(),
        "rounds": rounds,
        "speedup_vs_trl": speedup,
    }
    tag = args.tag or args.model
    stem = args.out_dir / f"bench_online_dpo_{tag}"
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        f"# Online DPO benchmark: {tag}",
        "",
        f"`{report['command']}`",
        "",
        "| round | ours s/step | TRL s/step | ours gen tok/s | TRL gen tok/s | TRL / ours | "
        "fraction of fp32 peak: ours, TRL |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(rounds, 1):
        ours, trl = r["ours-dpo-online"], r["trl-dpo-online"]
        peak = ", ".join(f"{a['fraction_of_peak']:.1%}" if "fraction_of_peak" in a else "n/a" for a in (ours, trl))
        lines.append(
            f"| {i} | {ours['median_s']:.2f} | {trl['median_s']:.2f} | {ours['tokens_per_s']:.0f} | "
            f"{trl['tokens_per_s']:.0f} | {trl['median_s'] / ours['median_s']:.2f} | {peak} |"
        )
    lines += [
        "",
        f"Speedup (median of per-round ratios): **{speedup['median']:.2f}x**, bootstrap 95 % CI "
        f"[{speedup['ci'][0]:.2f}, {speedup['ci'][1]:.2f}].",
        f"Pairs per step in our arm (TRL: always {args.prompts_per_step}; ours drops a prompt whose two "
        f"completions tie): mean {statistics.fmean(pairs):.2f}, min {min(pairs)}.",
    ]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"online_speedup_vs_trl dpo={speedup['median']:.2f}")


if __name__ == "__main__":
    main()
