"""What both online benchmarks share: their common options and running an arm in its own process."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def online_parser(description: str, *, beta: float, beta_help: str) -> argparse.ArgumentParser:
    """The options both online benchmarks share (each adds its own)."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2")
    p.add_argument("--steps", type=int, default=24, help="optimizer steps per arm and round")
    p.add_argument("--warmup", type=int, default=4, help="first steps left out of the statistics")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--prompts-per-step", type=int, default=2)
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--lr", type=float, default=1e-6)
    p.add_argument("--beta", type=float, default=beta, help=beta_help)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tag", default=None)
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--spec", default=None, help=argparse.SUPPRESS)
    return p


def checked(p: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    args = p.parse_args(argv)
    if args.warmup >= args.steps:
        p.error("--warmup must be smaller than --steps")
    return args


def run_child(script: str, arm: str, spec: dict, work: Path) -> dict:
    """Run ``arm`` in a fresh process of ``script`` (``--child``); its record, or exit naming the arm."""
    from . import ROOT

    spec_path, out = work / f"{arm}.json", work / f"{arm}.out.json"
    spec_path.write_text(json.dumps({**spec, "out": str(out)}))
    proc = subprocess.run(
        [sys.executable, script, "--child", arm, "--spec", str(spec_path)], cwd=ROOT, capture_output=True, text=True
    )
    if proc.returncode != 0 or not out.exists():
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-8000:])
        raise SystemExit(f"arm {arm} failed (exit {proc.returncode})")
    return json.loads(out.read_text())


def serve_child(args: argparse.Namespace, runners: dict) -> bool:
    """In an arm's own process (``--child ARM``): run the runner named by the arm's first word, write its record
    where the spec says and return True; False in the parent."""
    if not args.child:
        return False
    spec = json.loads(Path(args.spec).read_text())
    Path(spec["out"]).write_text(json.dumps(runners[args.child.split("-")[0]](spec)))
    return True


def run_rounds(script: str, args: argparse.Namespace, arms: list[str], **extra) -> list[dict]:
    """``args.rounds`` rounds, every arm once per round in its own process of ``script`` (A B A B ...), on the
    shipped arithmetic prompts; each round's ``{arm: summary}`` (``extra`` goes into the spec)."""
    from hl_lightning.data.arithmetic import DATA_DIR

    from .data import model_dir
    from .online import mean_prompt_tokens, summary

    with tempfile.TemporaryDirectory(prefix="hl-bench-online-") as tmp:
        spec = {k: v for k, v in vars(args).items() if k not in ("child", "spec", "out_dir", "tag")}
        spec.update(
            model_dir=str(model_dir(args.model, Path(tmp))), prompts=str(DATA_DIR / "prompts_train.jsonl"), **extra
        )
        rounds, prompt_tokens = [], mean_prompt_tokens(spec)
        for i in range(args.rounds):
            rounds.append(
                {
                    arm: summary(run_child(script, arm, spec, Path(tmp)), args.warmup, spec, prompt_tokens)
                    for arm in arms
                }
            )
            print(
                f"[bench] round {i + 1}: "
                + ", ".join(
                    f"{a} {r['median_s']:.2f} s/step {r['tokens_per_s']:.0f} tok/s" for a, r in rounds[-1].items()
                ),
                flush=True,
            )
    return rounds
