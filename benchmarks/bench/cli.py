"""The parent process: plan the job, run every arm in its own process, write and print the report."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from .args import arms_for, parse_args
from .data import build_data, model_dir
from .proc import child, run_arm
from .report import arm_summary, compare, environment, markdown, merge_rounds, summary_lines


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        return child(args.child, json.loads(Path(args.spec).read_text()))
    arms = arms_for(args)
    if any(a.startswith("trl") for a in arms):
        require_trl()
    max_length = args.max_length or (args.pad_to_length + 16 if args.pad_to_length else 128)
    tag = args.tag or (
        f"{args.model}_L{args.pad_to_length}" + ("" if args.long_part == "prompt" else "c")
        if args.pad_to_length
        else args.model
    )
    with tempfile.TemporaryDirectory(prefix="hl-bench-") as tmp:
        spec, rounds = run_arms(args, arms, max_length, Path(tmp))
    write_report(args, argv, tag, spec, rounds)


def require_trl() -> None:
    try:
        import trl  # noqa: F401
    except ImportError:
        raise SystemExit("TRL is not installed: pip install -e '.[bench]' (benchmark-only extras)") from None


def run_arms(args: argparse.Namespace, arms: list[str], max_length: int, work: Path) -> tuple[dict, list[dict]]:
    """Build the shared model directory and data in ``work``, then ``--rounds`` rounds of every arm one after
    another (A B A B ...: slow drift of the machine hits every arm alike); one ``{arm: summary}`` per round."""
    from hl_lightning.models.loading import load_tokenizer

    mdir = model_dir(args.model, work)
    tokenizer = load_tokenizer(str(mdir))
    data = build_data(args, tokenizer, work)
    if data["max_tokens"] > max_length:
        raise SystemExit(
            f"--max-length {max_length} would truncate sequences of up to {data['max_tokens']} tokens; raise it"
        )
    spec = {
        "model_dir": str(mdir),
        "data": data,
        "steps": args.steps,
        "pairs": args.pairs,
        "kto_items": args.kto_items,
        "groups": args.groups,
        "max_length": max_length,
        "lr": args.lr,
        "weight_decay": args.weight_decay,
        "beta": args.beta,
        "max_grad_norm": args.max_grad_norm,
        "threads": args.threads,
        "seed": args.seed,
        "lora_rank": args.lora_rank,
    }
    print(
        f"[bench] model={args.model} mean tokens/sequence={data['mean_tokens']:.1f} "
        f"(max {data['max_tokens']}), max_length={max_length}, arms: {' '.join(arms)}",
        flush=True,
    )
    rounds = []
    for i in range(args.rounds):
        rounds.append({})
        for arm in arms:
            a = rounds[-1][arm] = arm_summary(run_arm(arm, spec, work), args.warmup)
            print(
                f"[bench] round {i + 1}/{args.rounds} {arm:24s} median {a['median_s']:.3f} s/step (p10 "
                f"{a['p10_s']:.3f}, p90 {a['p90_s']:.3f}), peak RSS {a['peak_rss_gb']:.2f} GB, "
                f"{a['mean_tokens']:.1f} tokens/seq, wall {a['wall_s']:.0f} s",
                flush=True,
            )
    return spec, rounds


def write_report(args: argparse.Namespace, argv: list[str] | None, tag: str, spec: dict, rounds: list[dict]) -> None:
    """Write ``bench_<mode>_<tag>.{json,md}`` and print the report and its closing lines."""
    config = {k: v for k, v in spec.items() if k not in ("model_dir", "data")}  # no temporary paths
    config["data"] = {k: v for k, v in spec["data"].items() if k != "files"}
    config.update(
        model=args.model,
        warmup=args.warmup,
        pad_to_length=args.pad_to_length,
        long_part=args.long_part,
        rounds=args.rounds,
    )
    report = {
        "tag": tag,
        "mode": args.mode,
        "command": " ".join(["python", "benchmarks/bench_train.py", *(argv if argv is not None else sys.argv[1:])]),
        "config": config,
        "env": environment(),
        "arms": merge_rounds(rounds),
        "comparisons": compare(rounds),
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stem = args.out_dir / f"bench_{args.mode}_{tag}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))
    print(f"[bench] wrote {stem}.json and {stem}.md")
    print("\n".join(summary_lines(report)))
