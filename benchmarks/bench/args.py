"""The benchmark's command line and the arms that each ``--mode`` runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import DESCRIPTION, RESULTS

# *-retain / *-noretain: the process keeps freed memory for reuse or not (hl_lightning.runtime; ours by default)
TRL_ARMS = ["ours-dpo", "trl-dpo", "ours-kto", "trl-kto", "trl-dpo-retain", "ours-dpo-noretain"]
HUMANLINE_ARMS = ["ours-dpo-plain", "ours-dpo-humanline"]
ABLATION_ARMS = ["ours-dpo-noshare", "ours-kto-noshare", "ours-dpo-notlean", "ours-kto-notlean"]
LORA_ARMS = ["ours-dpo-lora-humanline", "ours-dpo-humanline", "trl-dpo-peft", "trl-dpo"]
GRPO_ARMS = ["ours-grpo4-noshare", "ours-grpo4", "ours-grpo8-noshare", "ours-grpo8"]
ALL_ARMS = list(dict.fromkeys(TRL_ARMS + HUMANLINE_ARMS + ABLATION_ARMS + LORA_ARMS + GRPO_ARMS))
MODES = {
    "trl": TRL_ARMS,
    "humanline": HUMANLINE_ARMS,
    "lora": LORA_ARMS,
    "grpo": GRPO_ARMS,
    "all": TRL_ARMS + HUMANLINE_ARMS,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--mode",
        choices=list(MODES),
        default="trl",
        help="trl: DPO and KTO vs TRL; humanline: humanline DPO vs plain DPO; lora: LoRA humanline DPO vs "
        "full humanline DPO, TRL PEFT DPO and TRL full DPO; grpo: GRPO groups of 4 and 8 completions "
        "with and without share_prompt; all: trl + humanline",
    )
    p.add_argument(
        "--arms",
        nargs="+",
        choices=ALL_ARMS,
        default=None,
        help=f"run only these arms (default: those of --mode). Ablations: {' '.join(ABLATION_ARMS)}",
    )
    p.add_argument("--model", default="smollm2", help="'smollm2' (embedded), 'tiny-random', or a local directory")
    p.add_argument("--steps", type=int, default=25, help="optimizer steps per arm")
    p.add_argument("--warmup", type=int, default=5, help="first steps left out of the statistics")
    p.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="interleaved rounds: every arm runs once per round, in order (A B A B ...); ratios are the "
        "median of the per-round ratios with a bootstrap 95 %% CI",
    )
    p.add_argument("--lora-rank", type=int, default=16, help="LoRA rank of the lora arms (alpha = 2 x rank)")
    p.add_argument("--pairs", type=int, default=2, help="DPO pairs per step")
    p.add_argument("--kto-items", type=int, default=4, help="KTO items per step")
    p.add_argument("--groups", type=int, default=2, help="GRPO groups (prompts) per step")
    p.add_argument(
        "--max-length",
        type=int,
        default=None,
        help="max tokens per sequence in both frameworks (default 128, or --pad-to-length)",
    )
    p.add_argument(
        "--pad-to-length",
        type=int,
        default=0,
        help="lengthen every sequence to about this many tokens with a fixed context text (0: off)",
    )
    p.add_argument(
        "--long-part",
        choices=["prompt", "completion"],
        default="prompt",
        help="where --pad-to-length puts the context: a long system prompt, or long completions",
    )
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--beta", type=float, default=0.1)
    p.add_argument("--max-grad-norm", type=float, default=0.0, help="gradient clipping in both (0: off)")
    p.add_argument("--threads", type=int, default=None, help="torch threads per arm (default: torch's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tag", default=None, help="name of the result files (default from model and length)")
    p.add_argument("--out-dir", type=Path, default=RESULTS)
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--spec", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.warmup >= args.steps:
        p.error("--warmup must be smaller than --steps")
    if args.rounds < 1:
        p.error("--rounds must be >= 1")
    return args


def arms_for(args: argparse.Namespace) -> list[str]:
    if args.arms:
        return list(dict.fromkeys(args.arms))
    return MODES[args.mode]
