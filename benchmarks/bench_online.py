"""Online GRPO speed: hl_lightning (N=1) vs TRL's GRPOTrainer with transformers generation, on this CPU.

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python benchmarks/bench_online.py                      # SmolLM2, 2 prompts x 4 generations, 3 rounds
    .venv/bin/python benchmarks/bench_online.py --model tiny-random --steps 3 --warmup 1 --rounds 1   # smoke

Both arms: the same model directory, the shipped arithmetic prompts (same order is not guaranteed: each framework
draws its own), 4 completions per prompt, 2 prompts per step, the same max new tokens, temperature, top-p, lr
(constant, fused AdamW, no weight decay), beta (KL) and epsilon (0.2), fp32, exact-match reward. Each arm runs in
its own process, one after another, ``--rounds`` times interleaved (A B A B ...). Per step: the wall clock between
step ends (rollout included); generation: tokens/s of ``model.generate`` (timed identically in both). The ratio is
the median of the per-round ratios (TRL s/step / ours) with a bootstrap 95 % CI. Results:
``benchmarks/results/bench_online_<tag>.{json,md}``; the last line is ``online_speedup_vs_trl grpo=<ratio>``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import RESULTS
from bench.online import ARMS, run_bare, run_ours, run_trl
from bench.online_cli import checked, online_parser, run_rounds, serve_child
from bench.report import environment, stat


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = online_parser(__doc__, beta=0.0, beta_help="KL coefficient (TRL's beta, our kl_beta)")
    p.add_argument("--num-generations", type=int, default=4)
    p.add_argument("--out-dir", type=Path, default=RESULTS)
    return checked(p, argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if not serve_child(args, {"ours": run_ours, "trl": run_trl, "bare": run_bare}):
        write(args, argv, run_rounds(__file__, args, ARMS))


def peak_fractions(rounds: list[dict]) -> dict:
    """Each arm's median fraction of peak over the rounds that measured it."""
    arms = {arm: [r[arm]["fraction_of_peak"] for r in rounds if "fraction_of_peak" in r[arm]] for arm in ARMS}
    return {arm: statistics.median(v) for arm, v in arms.items() if v}


def write(args: argparse.Namespace, argv: list[str] | None, rounds: list[dict]) -> None:
    speedup = stat([r["trl-grpo-online"]["median_s"] / r["ours-grpo-online"]["median_s"] for r in rounds])
    of_limit = stat([r["ours-grpo-online"]["tokens_per_s"] / r["bare-kv-loop"]["tokens_per_s"] for r in rounds])
    report = {
        "command": " ".join(["python", "benchmarks/bench_online.py", *(argv or sys.argv[1:])]),
        "fraction_of_peak": peak_fractions(rounds),
        "config": {k: v for k, v in vars(args).items() if k not in ("child", "spec", "out_dir")},
        "env": environment(),
        "rounds": rounds,
        "speedup_vs_trl": speedup,
        "generation_vs_bare_loop": of_limit,
    }
    tag = args.tag or args.model
    stem = args.out_dir / f"bench_online_{tag}"
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        f"# Online GRPO benchmark: {tag}",
        "",
        f"`{report['command']}`",
        "",
        "| round | ours s/step | TRL s/step | ours gen tok/s | TRL gen tok/s | bare KV loop tok/s | TRL / ours | "
        "fraction of fp32 peak: ours, TRL, bare loop |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(rounds, 1):
        ours, trl, bare = r["ours-grpo-online"], r["trl-grpo-online"], r["bare-kv-loop"]
        peak = ", ".join(
            f"{a['fraction_of_peak']:.1%}" if "fraction_of_peak" in a else "n/a" for a in (ours, trl, bare)
        )
        lines.append(
            f"| {i} | {ours['median_s']:.2f} | {trl['median_s']:.2f} | {ours['tokens_per_s']:.0f} | "
            f"{trl['tokens_per_s']:.0f} | {bare['tokens_per_s']:.0f} | "
            f"{trl['median_s'] / ours['median_s']:.2f} | {peak} |"
        )
    lines += [
        "",
        f"Speedup (median of per-round ratios): **{speedup['median']:.2f}x**, bootstrap 95 % CI "
        f"[{speedup['ci'][0]:.2f}, {speedup['ci'][1]:.2f}].",
        f"Our generation tokens/s as a fraction of the bare KV-cache loop's (same batch): "
        f"**{of_limit['median']:.0%}** [{of_limit['ci'][0]:.0%}, {of_limit['ci'][1]:.0%}].",
        "Fraction of the measured fp32 matmul peak (model FLOPs of a mean step: rollout decode + policy "
        "forward and backward, / median s per step / the process's `torch.mm` peak), median over rounds: "
        + ", ".join(f"{arm} {v:.1%}" for arm, v in peak_fractions(rounds).items())
        + ".",
    ]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"online_speedup_vs_trl grpo={speedup['median']:.2f}")


if __name__ == "__main__":
    main()
