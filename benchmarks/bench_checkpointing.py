"""Peak memory of DPO training with and without activation checkpointing (``gradient_checkpointing: true``).

    .venv/bin/python benchmarks/bench_checkpointing.py              # SmolLM2, 2 pairs x ~512 tokens, 4 steps each
    .venv/bin/python benchmarks/bench_checkpointing.py --model tiny-random --pad-to-length 64 --steps 2   # smoke

The same rows as ``bench_train.py --pad-to-length N`` (the shipped arithmetic pairs with a long system prompt, or
with ``--long-part completion`` long completions). Each setting, checkpointing off then on, trains in a fresh
Python process: DPOModule (fp32, fused AdamW, the reference forward under no_grad) with every memory shortcut on,
``share_prompt`` (a pair's prompt runs once), ``lean_activations`` (lean MLPs and RMSNorms) and the chunked LM head
(always on), fitted by a Lightning Trainer on the CPU for ``--steps`` steps. A process's peak RSS
(``getrusage`` ``ru_maxrss``) is its high-water mark over the whole run: model, reference, gradients, optimizer
state and the activations of the largest step. Step times (first ``--warmup`` left out) are recorded too; the
losses of both settings must agree (checkpointing recomputes, it does not approximate).

Results: ``benchmarks/results/activation_checkpointing_<tag>.{json,md}``; the last line printed is
``activation_checkpointing saving_gb=<GB> memory_ratio=<on/off> step_time_ratio=<on/off>``.
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
from bench.report import environment, summarize  # noqa: E402

SETTINGS = {"off": False, "on": True}  # name -> gradient_checkpointing
GB = 2**30


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2", help="'smollm2' (embedded), 'tiny-random', or a local directory")
    p.add_argument("--pad-to-length", type=int, default=512, help="tokens per sequence, about")
    p.add_argument("--long-part", choices=["prompt", "completion"], default="prompt")
    p.add_argument("--pairs", type=int, default=2, help="DPO pairs per step")
    p.add_argument("--steps", type=int, default=4, help="optimizer steps per setting")
    p.add_argument("--warmup", type=int, default=1, help="first steps left out of the step times")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tag", default=None, help="name of the result files (default <model>_L<pad-to-length>)")
    p.add_argument("--out-dir", type=Path, default=RESULTS)
    p.add_argument("--child", choices=list(SETTINGS), default=None, help=argparse.SUPPRESS)
    p.add_argument("--spec", type=Path, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.warmup >= args.steps:
        p.error("--warmup must be smaller than --steps")
    return args


def job_spec(args: argparse.Namespace, work: Path) -> dict:
    """The model directory and the pairs file both settings train on."""
    from bench.data import build_data, model_dir

    from hl_lightning.models.loading import load_tokenizer

    mdir = model_dir(args.model, work)
    data = build_data(
        argparse.Namespace(pad_to_length=args.pad_to_length, long_part=args.long_part), load_tokenizer(str(mdir)), work
    )
    return {
        "model_dir": str(mdir),
        "pairs_path": data["files"]["pairs"],
        "mean_tokens": data["mean_tokens"],
        "max_tokens": data["max_tokens"],
        "max_length": args.pad_to_length + 16,
        **{k: getattr(args, k) for k in ("pairs", "steps", "warmup", "threads", "seed")},
    }


def child(setting: str, spec: dict) -> None:
    """Train with ``gradient_checkpointing = SETTINGS[setting]``; write step times, losses and peak RSS."""
    from functools import partial

    import lightning.pytorch as pl
    import torch
    from bench.arms_ours import step_timer
    from bench.rss import peak_rss_bytes

    from hl_lightning.data import PreferenceDataModule
    from hl_lightning.models.head import chunk_tokens
    from hl_lightning.modules import DPOModule

    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    torch.manual_seed(spec["seed"])
    module = DPOModule(
        model=spec["model_dir"],
        optimizer=partial(torch.optim.AdamW, lr=1e-5, weight_decay=0.0, fused=True),
        gradient_checkpointing=SETTINGS[setting],
        share_prompt=True,
        lean_activations=True,
    )
    data = PreferenceDataModule(
        path=spec["pairs_path"],
        val_path=spec["pairs_path"],
        tokenizer=spec["model_dir"],
        batch_size=spec["pairs"],
        max_length=spec["max_length"],
        max_prompt_length=spec["max_length"] - 1,
        seed=spec["seed"],
    )
    times: list[float] = []
    marks: dict = {}
    steps = step_recorder()
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=spec["steps"],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=[step_timer(times, marks), steps],
    )
    trainer.fit(module, datamodule=data)
    result = {
        "step_times": times,
        "losses": steps.losses,
        "scored_tokens": steps.scored,
        "head_chunk_tokens": chunk_tokens(module.policy.config.vocab_size),  # the head chunks past this many
        "rss_before_train_bytes": marks["rss_before_train"],
    }
    Path(spec["out"]).write_text(json.dumps({**result, "peak_rss_bytes": peak_rss_bytes()}))


def step_recorder():
    """A Lightning callback keeping every training step's loss (``.losses``) and the tokens its LM head scores
    (``.scored``: the completion tokens of the batch, all in one policy forward)."""
    import lightning.pytorch as pl

    class Steps(pl.Callback):
        def __init__(self) -> None:
            self.losses: list[float] = []
            self.scored: list[int] = []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self.losses.append(float(outputs["loss"]))
            self.scored.append(int(batch.rows().completion_mask.sum()))

    return Steps()


def run_setting(setting: str, spec: dict, work: Path) -> dict:
    """One setting in a fresh Python process; its result with the wall time."""
    spec_path, out_path = work / f"{setting}.spec.json", work / f"{setting}.result.json"
    spec_path.write_text(json.dumps({**spec, "out": str(out_path)}))
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", setting, "--spec", str(spec_path)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0 or not out_path.exists():
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-8000:])
        raise SystemExit(f"bench_checkpointing.py: checkpointing {setting} failed (exit {proc.returncode}).")
    load = [load_before, os.getloadavg()[0]]
    return {**json.loads(out_path.read_text()), "wall_s": time.perf_counter() - started, "load_avg_1min": load}


def summary(result: dict, warmup: int) -> dict:
    """One setting: peak RSS, RSS before training, step-time statistics (warm-up left out), losses."""
    return {
        **summarize(result["step_times"][warmup:]),
        "peak_rss_bytes": result["peak_rss_bytes"],
        "peak_rss_gb": result["peak_rss_bytes"] / GB,
        "rss_before_train_gb": result["rss_before_train_bytes"] / GB,
        "step_times": result["step_times"],
        "losses": result["losses"],
        "scored_tokens": result["scored_tokens"],
        "head_chunk_tokens": result["head_chunk_tokens"],
        "wall_s": result["wall_s"],
        "load_avg_1min": result["load_avg_1min"],
    }


def compare(off: dict, on: dict) -> dict:
    """Checkpointing on against off: the peak RSS saved (GB and % of off), the ratios on / off of peak RSS, of the
    training part of it (peak minus RSS before training) and of the median step time, and the largest relative
    difference of the two settings' step losses."""
    saving = off["peak_rss_gb"] - on["peak_rss_gb"]
    return {
        "saving_gb": saving,
        "saving_pct": 100 * saving / off["peak_rss_gb"],
        "memory_ratio": on["peak_rss_gb"] / off["peak_rss_gb"],
        "training_memory_ratio": (on["peak_rss_gb"] - on["rss_before_train_gb"])
        / (off["peak_rss_gb"] - off["rss_before_train_gb"]),
        "step_time_ratio": on["median_s"] / off["median_s"],
        "max_loss_rel_diff": max(abs(a - b) / abs(b) for a, b in zip(on["losses"], off["losses"], strict=True)),
    }


def markdown(report: dict) -> str:
    spec, env, c = report["spec"], report["env"], report["comparisons"]
    lines = [
        f"# Activation checkpointing, peak memory: {report['tag']}",
        "",
        f"`{report['command']}` ({report['date']})",
        "",
        f"Model `{report['model']}`, fp32 on the CPU, DPO, {spec['pairs']} pairs per step, mean "
        f"{spec['mean_tokens']:.0f} (max {spec['max_tokens']}) tokens per sequence, fused AdamW; share_prompt, "
        f"lean_activations and the chunked LM head on; {spec['steps']} steps per setting (step times without the "
        f"first {spec['warmup']}), each setting in its own process. Peak RSS = the process's ru_maxrss.",
        head_line(report["settings"]["off"]),
        f"torch {env['torch']}, transformers {env['transformers']}, lightning {env['lightning']}, Python "
        f"{env['python']}, {env['cpus']} CPUs ({env.get('cpu')}), {env['torch_threads']} torch threads.",
        "1-minute load average before / after each setting: "
        + "; ".join(
            f"{n} {s['load_avg_1min'][0]:.1f} / {s['load_avg_1min'][1]:.1f}" for n, s in report["settings"].items()
        )
        + f". Above {env['torch_threads']} (the torch threads), other processes shared the cores: the step times "
        "are then noisy; peak RSS does not depend on that.",
        "",
        "| gradient_checkpointing | peak RSS GiB | RSS before training GiB | median s/step | p10-p90 s | losses |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in report["settings"].items():
        lines.append(
            f"| {name} | {s['peak_rss_gb']:.3f} | {s['rss_before_train_gb']:.3f} | {s['median_s']:.2f} | "
            f"{s['p10_s']:.2f}-{s['p90_s']:.2f} | {', '.join(f'{v:.5f}' for v in s['losses'])} |"
        )
    lines += [
        "",
        "| on vs off | |",
        "|---|---|",
        f"| peak RSS saved | {c['saving_gb']:.3f} GiB ({c['saving_pct']:.1f} %) |",
        f"| peak RSS on / off | {c['memory_ratio']:.3f} |",
        f"| training part of the peak (peak - RSS before training) on / off | {c['training_memory_ratio']:.3f} |",
        f"| median step time on / off | {c['step_time_ratio']:.2f} |",
        f"| largest relative difference of the step losses | {c['max_loss_rel_diff']:.1e} |",
    ]
    return "\n".join(lines) + "\n"


def head_line(setting: dict) -> str:
    """Whether the LM head ran in chunks: it does when a forward scores more than ``head_chunk_tokens`` tokens."""
    most, chunk = max(setting["scored_tokens"]), setting["head_chunk_tokens"]
    how = "in chunks" if most > chunk else "in one piece"
    return f"The LM head scores at most {most} tokens per step here, so it ran {how} (it chunks past {chunk})."


def main(argv: list[str] | None = None) -> dict | None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.child:
        return child(args.child, json.loads(args.spec.read_text()))
    with tempfile.TemporaryDirectory(prefix="hl-bench-ckpt-") as tmp:
        spec = job_spec(args, Path(tmp))
        settings = {name: summary(run_setting(name, spec, Path(tmp)), args.warmup) for name in SETTINGS}
    tag = args.tag or f"{args.model}_L{args.pad_to_length}{'' if args.long_part == 'prompt' else 'c'}"
    report = {
        "tag": tag,
        "command": " ".join(["python benchmarks/bench_checkpointing.py", *argv]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": args.model,
        "spec": {k: v for k, v in spec.items() if k not in ("model_dir", "pairs_path")},
        "env": environment(),
        "settings": settings,
        "comparisons": compare(settings["off"], settings["on"]),
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stem = args.out_dir / f"activation_checkpointing_{tag}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=1))
    stem.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))
    c = report["comparisons"]
    print(
        f"activation_checkpointing saving_gb={c['saving_gb']:.3f} memory_ratio={c['memory_ratio']:.3f} "
        f"step_time_ratio={c['step_time_ratio']:.2f}"
    )
    return report


if __name__ == "__main__":
    main()
