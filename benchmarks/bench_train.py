"""Training speed and peak memory: hl_lightning vs TRL's DPOTrainer / KTOTrainer on the same job.

    .venv/bin/pip install -e '.[bench]'                     # TRL + psutil: benchmark-only extras
    .venv/bin/python benchmarks/bench_train.py                # DPO and KTO vs TRL, embedded SmolLM2, 25 steps
    .venv/bin/python benchmarks/bench_train.py --pad-to-length 512          # ~512-token sequences
    .venv/bin/python benchmarks/bench_train.py --mode humanline             # humanline DPO vs plain DPO
    .venv/bin/python benchmarks/bench_train.py --model tiny-random --steps 3 --warmup 1 --mode all  # smoke

Every arm (one framework x one objective) runs in a fresh subprocess, one after another, so that its peak
RSS is its own and no arm competes with another for the cores. Both frameworks get the same model
directory, the same conversational rows (the shipped arithmetic data, rendered by the same chat template),
the same batch, max length, optimizer (fused AdamW, same lr / betas / weight decay, constant lr), beta,
precision (fp32), no gradient clipping unless ``--max-grad-norm``, no gradient checkpointing, no
evaluation, logging or checkpoints, data loading in the main process. Each optimizer step is timed with
the wall clock from the framework's step-begin hook to its step-end hook (forward, backward, optimizer
step, zero_grad; data loading excluded in both); the first ``--warmup`` steps are dropped.

Results go to ``benchmarks/results/bench_<mode>_<tag>.{json,md}``; the last line printed is
``speedup_vs_trl dpo=<ratio> kto=<ratio>`` (TRL's median seconds per step / ours), or for
``--mode humanline`` ``humanline_overhead=<pct>% sync_ms=<ms>``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TRL_ARMS = ["ours-dpo", "trl-dpo", "ours-kto", "trl-kto"]
HUMANLINE_ARMS = ["ours-dpo-plain", "ours-dpo-humanline"]
ABLATION_ARMS = ["ours-dpo-noshare", "ours-kto-noshare"]
ALL_ARMS = TRL_ARMS + HUMANLINE_ARMS + ABLATION_ARMS
# A fixed, neutral context that lengthens every prompt (as a long system prompt / retrieved document would).
CONTEXT = ("Arithmetic notes. Addition combines two numbers into their sum; subtraction takes the second "
           "number away from the first. Work digit by digit from the right and carry or borrow as needed. ")


# =============================================================================== parent: plan and report
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=["trl", "humanline", "all"], default="trl",
                   help="trl: DPO and KTO vs TRL; humanline: humanline DPO vs plain DPO; all: both")
    p.add_argument("--arms", nargs="+", choices=ALL_ARMS, default=None,
                   help=f"run only these arms (default: those of --mode). Ablations: {' '.join(ABLATION_ARMS)}")
    p.add_argument("--model", default="smollm2", help="'smollm2' (embedded), 'tiny-random', or a local directory")
    p.add_argument("--steps", type=int, default=25, help="optimizer steps per arm")
    p.add_argument("--warmup", type=int, default=5, help="first steps left out of the statistics")
    p.add_argument("--pairs", type=int, default=2, help="DPO pairs per step")
    p.add_argument("--kto-items", type=int, default=4, help="KTO items per step")
    p.add_argument("--max-length", type=int, default=None,
                   help="max tokens per sequence in both frameworks (default 128, or --pad-to-length)")
    p.add_argument("--pad-to-length", type=int, default=0,
                   help="lengthen every sequence to about this many tokens with a fixed context text (0: off)")
    p.add_argument("--long-part", choices=["prompt", "completion"], default="prompt",
                   help="where --pad-to-length puts the context: a long system prompt, or long completions")
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
    return args


def arms_for(args: argparse.Namespace) -> list[str]:
    if args.arms:
        return list(dict.fromkeys(args.arms))
    return {"trl": TRL_ARMS, "humanline": HUMANLINE_ARMS, "all": TRL_ARMS + HUMANLINE_ARMS}[args.mode]


def model_dir(spec: str, work: Path) -> Path:
    """A save_pretrained directory (model + tokenizer) that both frameworks load."""
    from hl_lightning.models.loading import load_causal_lm, load_tokenizer, resolve_pretrained

    if spec != "tiny-random":
        return Path(resolve_pretrained(spec))
    target = work / "tiny-random"
    if not target.exists():
        load_causal_lm("tiny-random").save_pretrained(target)
        load_tokenizer("tiny-random").save_pretrained(target)
    return target


def context_text(tokenizer, n_tokens: int) -> str:
    """The fixed context repeated and cut to ``n_tokens`` tokens (whole words)."""
    words = (CONTEXT * (n_tokens // 8 + 8)).split()
    lo, hi = 0, len(words)
    while lo < hi:  # the most words whose tokenisation fits in n_tokens
        mid = (lo + hi + 1) // 2
        if len(tokenizer(" ".join(words[:mid]), add_special_tokens=False)["input_ids"]) <= n_tokens:
            lo = mid
        else:
            hi = mid - 1
    return " ".join(words[:lo])


def build_data(args: argparse.Namespace, tokenizer, work: Path) -> dict:
    """Conversational JSONL files (pairs for DPO, unpaired items for KTO) shared by both frameworks."""
    from hl_lightning.data.arithmetic import DATA_DIR

    pairs = [json.loads(line) for line in (DATA_DIR / "pairs_train.jsonl").read_text().splitlines() if line]
    items = [json.loads(line) for line in (DATA_DIR / "unpaired_train.jsonl").read_text().splitlines() if line]

    def full_len(prompt, completion) -> int:
        return len(tokenizer.apply_chat_template(prompt + completion, tokenize=True, return_dict=True)["input_ids"])

    def msg(role, content):
        return [{"role": role, "content": content}]

    def rows(context: str | None) -> tuple[list[dict], list[dict]]:
        system, extra = [], ""
        if context is not None and args.long_part == "prompt":
            system = msg("system", context)  # replaces the template's default system prompt
        elif context is not None:
            extra = context + "\n"
        pair_rows = [{"prompt": system + msg("user", r["prompt"]), "chosen": msg("assistant", extra + r["chosen"]),
                      "rejected": msg("assistant", extra + r["rejected"])} for r in pairs]
        item_rows = [{"prompt": system + msg("user", r["prompt"]),
                      "completion": msg("assistant", extra + r["completion"]), "label": bool(r["label"])}
                     for r in items]
        return pair_rows, item_rows

    def lengths_of(pair_rows: list[dict]) -> list[int]:
        return [full_len(r["prompt"], r[c]) for r in pair_rows for c in ("chosen", "rejected")]

    pair_rows, item_rows = rows(None)
    lengths = lengths_of(pair_rows)
    if args.pad_to_length:  # the longest context (in tokens) whose longest row still fits in pad_to_length
        lo, hi = 1, args.pad_to_length
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if max(lengths_of(rows(context_text(tokenizer, mid))[0])) <= args.pad_to_length:
                lo = mid
            else:
                hi = mid - 1
        pair_rows, item_rows = rows(context_text(tokenizer, lo))
        lengths = lengths_of(pair_rows)
    files = {"pairs": work / "pairs.jsonl", "unpaired": work / "unpaired.jsonl"}
    files["pairs"].write_text("".join(json.dumps(r) + "\n" for r in pair_rows))
    files["unpaired"].write_text("".join(json.dumps(r) + "\n" for r in item_rows))
    return {"files": {k: str(v) for k, v in files.items()}, "mean_tokens": statistics.mean(lengths),
            "max_tokens": max(lengths)}


def run_arm(arm: str, spec: dict, work: Path) -> dict:
    """Run one arm in a fresh Python process; return its result."""
    spec_path = work / f"{arm}.spec.json"
    out_path = work / f"{arm}.result.json"
    spec_path.write_text(json.dumps({**spec, "out": str(out_path)}))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", arm, "--spec", str(spec_path)]
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0 or not out_path.exists():
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-8000:])
        raise SystemExit(f"arm {arm} failed (exit {proc.returncode})")
    result = json.loads(out_path.read_text())
    result["wall_s"] = time.perf_counter() - started
    return result


def summarize(times: list[float]) -> dict:
    s = sorted(times)
    deciles = statistics.quantiles(s, n=10, method="inclusive") if len(s) > 1 else [s[0]] * 9
    quartiles = statistics.quantiles(s, n=4, method="inclusive") if len(s) > 1 else [s[0]] * 3
    return {"median_s": statistics.median(s), "mean_s": statistics.mean(s), "min_s": s[0], "max_s": s[-1],
            "p10_s": deciles[0], "p90_s": deciles[-1], "iqr_s": quartiles[2] - quartiles[0], "n": len(s)}


def environment() -> dict:
    import lightning
    import torch
    import transformers

    env = {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
           "lightning": lightning.__version__, "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
           "machine": platform.machine()}
    try:
        import trl
        env["trl"] = trl.__version__
    except ImportError:
        env["trl"] = None
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]
        env["cpu"] = names[0] if names else None
    return env


def ratio(num: float | None, den: float | None) -> float | None:
    return None if not num or not den else num / den


def compare(arms: dict) -> dict:
    out = {}
    for objective in ("dpo", "kto"):
        ours, trl = arms.get(f"ours-{objective}"), arms.get(f"trl-{objective}")
        if ours and trl:
            out[objective] = {
                "speedup_vs_trl": ratio(trl["median_s"], ours["median_s"]),
                "memory_vs_trl": ratio(ours["peak_rss_gb"], trl["peak_rss_gb"]),
            }
        noshare = arms.get(f"ours-{objective}-noshare")
        if ours and noshare:
            out.setdefault(objective, {})["share_prompt_speedup"] = ratio(noshare["median_s"], ours["median_s"])
    plain, human = arms.get("ours-dpo-plain"), arms.get("ours-dpo-humanline")
    if plain and human:
        out["humanline"] = {"overhead_pct": 100 * (human["median_s"] / plain["median_s"] - 1),
                            "sync_ms": human.get("sync_median_ms")}
    return out


def fmt(x: float | None, spec: str = ".2f") -> str:
    return "n/a" if x is None else format(x, spec)


def markdown(report: dict) -> str:
    cfg, env = report["config"], report["env"]
    lines = [
        f"# Training benchmark: {report['tag']}",
        "",
        f"`{report['command']}`",
        "",
        f"Model `{cfg['model']}`, fp32, {cfg['pairs']} DPO pairs / {cfg['kto_items']} KTO items per step, "
        f"max length {cfg['max_length']}, mean {cfg['data']['mean_tokens']:.0f} (max {cfg['data']['max_tokens']}) "
        f"tokens per sequence, fused AdamW lr {cfg['lr']:g} wd {cfg['weight_decay']:g}, "
        f"grad clip {cfg['max_grad_norm'] or 'off'}, no gradient checkpointing; {cfg['steps']} steps per arm, "
        f"first {cfg['warmup']} dropped.",
        f"torch {env['torch']}, transformers {env['transformers']}, lightning {env['lightning']}, "
        f"TRL {env.get('trl')}, {env['cpus']} CPUs ({env.get('cpu')}), {env['torch_threads']} torch threads.",
        "",
        "| arm | median s/step | p10-p90 s | IQR s | peak RSS GB | steps timed |",
        "|---|---|---|---|---|---|",
    ]
    for name, a in report["arms"].items():
        lines.append(f"| {name} | {a['median_s']:.3f} | {a['p10_s']:.3f}-{a['p90_s']:.3f} | {a['iqr_s']:.3f} | "
                     f"{a['peak_rss_gb']:.2f} | {a['n']} |")
    comp = report["comparisons"]
    if any(k in comp for k in ("dpo", "kto")):
        lines += ["", "| objective | speedup vs TRL (TRL s/step / ours) | peak RSS ours / TRL | share_prompt speedup |",
                  "|---|---|---|---|"]
        for objective in ("dpo", "kto"):
            if objective in comp:
                c = comp[objective]
                lines.append(f"| {objective.upper()} | {fmt(c.get('speedup_vs_trl'))}x | "
                             f"{fmt(c.get('memory_vs_trl'))} | {fmt(c.get('share_prompt_speedup'))} |")
    if "humanline" in comp:
        h = comp["humanline"]
        lines += ["", "| humanline DPO (clip + sync every step) vs plain DPO | |", "|---|---|",
                  f"| overhead | {fmt(h['overhead_pct'], '+.1f')} % |",
                  f"| reference sync, median per step | {fmt(h['sync_ms'], '.1f')} ms |"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        return child(args.child, json.loads(Path(args.spec).read_text()))
    arms = arms_for(args)
    if any(a.startswith("trl") for a in arms):
        try:
            import trl  # noqa: F401
        except ImportError:
            raise SystemExit("TRL is not installed: pip install -e '.[bench]' (benchmark-only extras)") from None
    max_length = args.max_length or (args.pad_to_length + 16 if args.pad_to_length else 128)
    tag = args.tag or (f"{args.model}_L{args.pad_to_length}" + ("" if args.long_part == "prompt" else "c")
                       if args.pad_to_length else args.model)
    with tempfile.TemporaryDirectory(prefix="hl-bench-") as tmp:
        work = Path(tmp)
        from hl_lightning.models.loading import load_tokenizer

        mdir = model_dir(args.model, work)
        tokenizer = load_tokenizer(str(mdir))
        data = build_data(args, tokenizer, work)
        if data["max_tokens"] > max_length:
            raise SystemExit(f"--max-length {max_length} would truncate sequences of up to {data['max_tokens']} "
                             "tokens; raise it")
        spec = {"model_dir": str(mdir), "data": data, "steps": args.steps, "pairs": args.pairs,
                "kto_items": args.kto_items, "max_length": max_length, "lr": args.lr,
                "weight_decay": args.weight_decay, "beta": args.beta, "max_grad_norm": args.max_grad_norm,
                "threads": args.threads, "seed": args.seed}
        print(f"[bench] model={args.model} mean tokens/sequence={data['mean_tokens']:.1f} "
              f"(max {data['max_tokens']}), max_length={max_length}, arms: {' '.join(arms)}", flush=True)
        results = {}
        for arm in arms:
            r = run_arm(arm, spec, work)
            timed = r["step_times"][args.warmup:]
            results[arm] = {**summarize(timed), "peak_rss_gb": r["peak_rss_bytes"] / 1e9,
                            "rss_before_train_gb": r["rss_before_train_bytes"] / 1e9,
                            "mean_tokens": r.get("mean_tokens"), "truncated": r.get("truncated"),
                            "step_times": r["step_times"], "wall_s": r["wall_s"]}
            if r.get("sync_times"):
                results[arm]["sync_median_ms"] = 1000 * statistics.median(r["sync_times"][args.warmup:] or
                                                                          r["sync_times"])
            a = results[arm]
            print(f"[bench] {arm:20s} median {a['median_s']:.3f} s/step (p10 {a['p10_s']:.3f}, p90 {a['p90_s']:.3f}), "
                  f"peak RSS {a['peak_rss_gb']:.2f} GB, {a['mean_tokens']:.1f} tokens/seq, wall {a['wall_s']:.0f} s",
                  flush=True)
    config = {k: v for k, v in spec.items() if k not in ("model_dir", "data")}  # no temporary paths
    config["data"] = {k: v for k, v in spec["data"].items() if k != "files"}
    config.update(model=args.model, warmup=args.warmup, pad_to_length=args.pad_to_length, long_part=args.long_part)
    report = {"tag": tag, "mode": args.mode, "command": " ".join(["python", "benchmarks/bench_train.py",
                                                                   *(argv if argv is not None else sys.argv[1:])]),
              "config": config, "env": environment(), "arms": results, "comparisons": compare(results)}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stem = args.out_dir / f"bench_{args.mode}_{tag}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))
    print(f"[bench] wrote {stem}.json and {stem}.md")
    print("\n".join(summary_lines(report)))


def summary_lines(report: dict) -> list[str]:
    """The machine-readable closing lines: the speedup line comes last unless the mode is humanline."""
    comp, lines = report["comparisons"], []
    if "humanline" in comp:
        h = comp["humanline"]
        lines.append(f"humanline_overhead={h['overhead_pct']:.1f}% sync_ms={fmt(h['sync_ms'], '.1f')}")
    if report["mode"] != "humanline":
        lines.append(f"speedup_vs_trl dpo={fmt(comp.get('dpo', {}).get('speedup_vs_trl'))} "
                     f"kto={fmt(comp.get('kto', {}).get('speedup_vs_trl'))}")
    return lines


# =============================================================================== child: one arm
def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def current_rss_bytes() -> int:
    try:
        import psutil
        return psutil.Process().memory_info().rss
    except ImportError:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child(arm: str, spec: dict) -> None:
    import torch

    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    torch.manual_seed(spec["seed"])
    result = run_trl(arm, spec) if arm.startswith("trl") else run_ours(arm, spec)
    result["peak_rss_bytes"] = peak_rss_bytes()
    Path(spec["out"]).write_text(json.dumps(result))


def run_ours(arm: str, spec: dict) -> dict:
    from functools import partial

    import lightning.pytorch as pl
    import torch

    from callbacks import RefSyncCallback
    from hl_lightning.data import PreferenceDataModule, UnpairedPreferenceDataModule
    from hl_lightning.modules import DPOModule, KTOModule
    from hl_lightning.objectives import ClipLogRatio

    times: list[float] = []
    sync_times: list[float] = []
    marks: dict = {}

    class StepTimer(pl.Callback):
        def on_train_start(self, trainer, pl_module):
            marks["rss_before_train"] = current_rss_bytes()

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self.t0 = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            times.append(time.perf_counter() - self.t0)

    kto = "kto" in arm
    humanline = arm.endswith("humanline")
    optimizer = partial(torch.optim.AdamW, lr=spec["lr"], weight_decay=spec["weight_decay"], fused=True)
    common = dict(model=spec["model_dir"], beta=spec["beta"], optimizer=optimizer,
                  clip=ClipLogRatio(log_eps_P=-1.5, log_eps_R=1.5) if humanline else None,
                  share_prompt=not arm.endswith("noshare"))
    data_args = dict(tokenizer=spec["model_dir"], max_length=spec["max_length"],
                     max_prompt_length=spec["max_length"] - 1, seed=spec["seed"])
    # val_path = the same file: every row is a training row, as for TRL (validation never runs).
    if kto:
        module = KTOModule(**common)
        path = spec["data"]["files"]["unpaired"]
        data = UnpairedPreferenceDataModule(path=path, val_path=path, batch_size=spec["kto_items"], **data_args)
    else:
        module = DPOModule(**common)
        path = spec["data"]["files"]["pairs"]
        data = PreferenceDataModule(path=path, val_path=path, batch_size=spec["pairs"], **data_args)
    callbacks: list = [StepTimer()]
    if humanline:
        sync = module.sync_reference

        def timed_sync() -> None:
            t0 = time.perf_counter()
            sync()
            sync_times.append(time.perf_counter() - t0)

        module.sync_reference = timed_sync
        callbacks.append(RefSyncCallback(every_n_steps=1))
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, precision="32-true", max_steps=spec["steps"], logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
        num_sanity_val_steps=0, callbacks=callbacks, gradient_clip_val=spec["max_grad_norm"] or None,
    )
    trainer.fit(module, datamodule=data)
    rows = data.train_set
    seqs = [r[k]["input_ids"] for r in rows for k in ("chosen", "rejected")] if not kto else \
        [r["prompt_ids"] + r["completion_ids"] for r in rows]
    return {"step_times": times, "sync_times": sync_times, "rss_before_train_bytes": marks["rss_before_train"],
            "mean_tokens": statistics.mean(len(s) for s in seqs), "truncated": data._truncated}


def run_trl(arm: str, spec: dict) -> dict:
    import datasets
    import torch
    import transformers
    from transformers import TrainerCallback

    from hl_lightning.models.loading import load_tokenizer

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    times: list[float] = []
    marks: dict = {}

    class StepTimer(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            marks["rss_before_train"] = current_rss_bytes()

        def on_step_begin(self, args, state, control, **kwargs):
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            times.append(time.perf_counter() - self.t0)

    kto = arm == "trl-kto"
    tokenizer = load_tokenizer(spec["model_dir"])
    path = spec["data"]["files"]["unpaired" if kto else "pairs"]
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line]
    dataset = datasets.Dataset.from_list(rows)
    common = dict(
        output_dir=tempfile.mkdtemp(prefix="hl-bench-trl-"), max_steps=spec["steps"], learning_rate=spec["lr"],
        weight_decay=spec["weight_decay"], optim="adamw_torch_fused", lr_scheduler_type="constant",
        warmup_steps=0, max_grad_norm=spec["max_grad_norm"], bf16=False, fp16=False, use_cpu=True,
        gradient_checkpointing=False, logging_strategy="no", save_strategy="no", eval_strategy="no",
        report_to=[], disable_tqdm=True, dataloader_num_workers=0, max_length=spec["max_length"],
        beta=spec["beta"], seed=spec["seed"], model_init_kwargs={"dtype": torch.float32},
        precompute_ref_log_probs=False,
    )
    if kto:
        from trl import KTOConfig, KTOTrainer

        args = KTOConfig(per_device_train_batch_size=spec["kto_items"], **common)
        trainer = KTOTrainer(model=spec["model_dir"], args=args, train_dataset=dataset, processing_class=tokenizer)
    else:
        from trl import DPOConfig, DPOTrainer

        args = DPOConfig(per_device_train_batch_size=spec["pairs"], **common)
        trainer = DPOTrainer(model=spec["model_dir"], args=args, train_dataset=dataset, processing_class=tokenizer)
    trainer.add_callback(StepTimer())
    trainer.train()
    ds = trainer.train_dataset
    if kto:
        lengths = [len(p) + len(c) for p, c in zip(ds["prompt_ids"], ds["completion_ids"], strict=True)]
    else:
        lengths = [len(p) + len(c) for p, ch, rj in zip(ds["prompt_ids"], ds["chosen_ids"], ds["rejected_ids"],
                                                        strict=True) for c in (ch, rj)]
    return {"step_times": times, "rss_before_train_bytes": marks["rss_before_train"],
            "mean_tokens": statistics.mean(lengths), "truncated": sum(n > spec["max_length"] for n in lengths)}


if __name__ == "__main__":
    main()
