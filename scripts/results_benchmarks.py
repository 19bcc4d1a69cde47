"""``benchmarks/RESULTS.md``: every table of ``benchmarks/results/*.json``, with the machine, the versions and the
date each was measured (the date of the commit that added or last changed the JSON file).

Written by ``scripts/results_pages.py``; each JSON's own ``.md`` beside it is what its benchmark printed.
"""

from __future__ import annotations

import json
import statistics
import subprocess
from collections.abc import Callable
from pathlib import Path

from benchmarks.bench.report import LABELS

# Comparisons that the benchmark's own report (LABELS) does not name.
MORE_LABELS = {("humanline", "sync_ms"): "reference sync, ms"}


def commit_date(path: Path, root: Path) -> str:
    """The date (YYYY-MM-DD) the results file records, else that of the last commit that changed ``path``, or
    ``not committed`` (a results file should record its date: a shallow clone has no history to ask)."""
    recorded = json.loads(path.read_text(encoding="utf-8")).get("date")
    if recorded:
        return str(recorded)[:10]
    done = subprocess.run(
        ["git", "log", "-1", "--format=%cs", "--", str(path.relative_to(root))],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or "not committed"


def env_line(env: dict, date: str) -> str:
    """Where and with what a benchmark ran."""
    versions = ", ".join(
        f"{name} {env[name]}"
        for name in ("python", "torch", "transformers", "lightning", "trl", "peft")
        if env.get(name)
    )
    return (
        f"Measured {date} on {env.get('cpu') or env.get('machine')} ({env['cpus']} CPUs, {env['torch_threads']} torch "
        f"threads); {versions}."
    )


def _ci(c: dict, spec: str = ".2f") -> str:
    return f"[{c['ci'][0]:{spec}}, {c['ci'][1]:{spec}}]"


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.1%}"


def train_tables(report: dict) -> list[str]:
    """``benchmarks/bench_train.py``: one row per arm, then the comparisons between arms."""
    cfg = report["config"]
    lines = [
        f"{cfg['pairs']} DPO pairs / {cfg['kto_items']} KTO items / {cfg.get('groups', 2)} GRPO groups per step, mean "
        f"{cfg['data']['mean_tokens']:.0f} tokens per sequence, fp32, {cfg['steps']} steps per arm "
        + (f"and round, {cfg['rounds']} interleaved rounds." if cfg.get("rounds") else "in one pass."),
        "",
        "| arm | median s/step | per-round medians | p10–p90 s | fraction of fp32 peak | peak RSS GB | steps timed |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, a in report["arms"].items():
        rounds = ", ".join(f"{v:.2f}" for v in a.get("round_median_s", [])) or "–"
        lines.append(
            f"| {name} | {a['median_s']:.2f} | {rounds} | {a['p10_s']:.2f}–{a['p90_s']:.2f} | "
            f"{_pct(a.get('fraction_of_peak'))} | {a['peak_rss_gb']:.2f} | {a['n']} |"
        )
    lines += ["", "| comparison | median of per-round values [95 % CI] | per round |", "|---|---|---|"]
    for group, comparisons in report["comparisons"].items():
        for name, c in comparisons.items():
            label = {**LABELS, **MORE_LABELS}.get((group, name), f"{group}: {name}")
            if isinstance(c, dict):
                rounds = ", ".join(f"{v:.2f}" for v in c["rounds"])
                lines.append(f"| {label} | {c['median']:.2f} {_ci(c)} | {rounds} |")
            else:  # a single-pass report: one number, no interval
                lines.append(f"| {label} | {c:.2f} (one pass) | – |")
    return lines


def overhead_tables(result: dict) -> list[str]:
    """``benchmarks/bench_overhead.py``: humanline DPO against plain DPO, paired steps in one process."""
    o, s = result["overhead_pct"], result["sync_pct"]
    lines = [
        f"{len(o['pairs'])} paired steps (plain, humanline) on the same batches, {result['config']['pairs']} DPO pairs "
        f"per step, {result['tokens_per_step']:.0f} real tokens per step; fp32 matmul peak "
        f"{result['peak_gflops']:.0f} GFLOP/s.",
        "",
        "| quantity | median [95 % CI] |",
        "|---|---|",
        f"| humanline step − plain step, % of plain | {o['median']:+.2f} {_ci(o, '+.2f')} |",
        f"| reference sync, % of a plain step | {s['median']:.2f} {_ci(s)} |",
        f"| reference sync, ms | {result['sync_ms']['median']:.1f} |",
        "",
        "| arm | median s/step | model TFLOP per step | fraction of fp32 peak |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {name} | {a['median_s']:.3f} | {a['model_tflop']:.3f} | {_pct(a['fraction_of_peak'])} |"
        for name, a in result["arms"].items()
    ]
    return lines


def online_tables(result: dict) -> list[str]:
    """``benchmarks/bench_online.py`` / ``bench_online_dpo.py``: per round and arm, then the speedup."""
    cfg = result["config"]
    lines = [
        f"{cfg['prompts_per_step']} prompts per step, {cfg.get('num_generations', 2)} completions each, "
        f"{cfg['max_new_tokens']} new tokens, temperature {cfg['temperature']}, top-p {cfg['top_p']}, "
        f"{cfg['steps']} steps per arm and round (first {cfg['warmup']} dropped), {cfg['rounds']} rounds.",
        "",
        "| round | arm | median s/step | generation tokens/s | fraction of fp32 peak |",
        "|---|---|---|---|---|",
    ]
    for i, round_ in enumerate(result["rounds"], 1):
        lines += [
            f"| {i} | {arm} | {a['median_s']:.2f} | {a['tokens_per_s']:.0f} | {_pct(a.get('fraction_of_peak'))} |"
            for arm, a in round_.items()
        ]
    speed = result["speedup_vs_trl"]
    if "bare-kv-loop" in result["rounds"][0]:
        lines += ["", "The bare KV-cache loop (written in the benchmark) only generates: its time is a rollout's."]
    lines += ["", f"Speedup against TRL (median of per-round ratios): **{speed['median']:.2f}x** {_ci(speed)}."]
    if "generation_vs_bare_loop" in result:
        g = result["generation_vs_bare_loop"]
        lines.append(f"Generation tokens/s against the bare KV-cache loop: {g['median']:.0%} {_ci(g, '.0%')}.")
    pairs = [p for round_ in result["rounds"] for a in round_.values() for p in a.get("pairs", [])]
    if pairs:
        lines.append(f"Pairs per step in our arm: mean {statistics.fmean(pairs):.2f}, min {min(pairs)}.")
    return lines


def page_fault_tables(result: dict) -> list[str]:
    """``benchmarks/page_faults.py``: minor page faults per DPO step, freed memory kept or returned."""
    lines = [
        f"{result['steps']} DPO steps per mode.",
        "",
        "| freed memory | median minor faults per step | median s/step |",
        "|---|---|---|",
    ]
    lines += [f"| {m} | {r['median_faults']:.0f} | {r['median_s']:.3f} |" for m, r in result["summary"].items()]
    return lines


def memory_tables(result: dict) -> list[str]:
    """``benchmarks/profile_memory.py``: what one DPO step saves for its backward."""
    lines = [
        f"Mean {result['mean_tokens']:.0f} tokens per sequence; peak RSS {result['peak_rss_bytes'] / 2**30:.2f} GiB "
        f"({result['rss_before_loss_bytes'] / 2**30:.2f} GiB before the loss).",
        "",
        "| saved for backward | GiB |",
        "|---|---|",
    ]
    saved = sorted(result["saved_bytes"].items(), key=lambda kv: -kv[1])
    lines += [f"| {name} | {size / 2**30:.3f} |" for name, size in saved]
    lines.append(f"| **total** | **{result['saved_total_bytes'] / 2**30:.3f}** |")
    return lines


def sampling_tables(result: dict) -> list[str]:
    """``benchmarks/profile_sampling.py``: the top-p sampler's share of a rollout."""
    lines = [
        f"{result['args']['rollouts']} rollouts per sampler.",
        "",
        "| sampler | median s in sampling per rollout | median s per rollout | median tokens |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {name} | {s['sampling_s']:.3f} | {s['rollout_s']:.2f} | {s['tokens']} |"
        for name, s in result["summary"].items()
    ]
    return lines


def checkpointing_tables(result: dict) -> list[str]:
    """``benchmarks/bench_checkpointing.py``: peak RSS and step time with and without activation checkpointing."""
    spec, cmp = result["spec"], result["comparisons"]
    lines = [
        f"{spec['pairs']} pairs of {spec['mean_tokens']:.0f} tokens on average, {spec['steps']} steps per setting, "
        "each setting in a fresh process.",
        "",
        "| gradient_checkpointing | peak RSS GiB | RSS before training GiB | median s per step |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {name} | {s['peak_rss_gb']:.3f} | {s['rss_before_train_gb']:.3f} | {s['median_s']:.1f} |"
        for name, s in result["settings"].items()
    ]
    lines += [
        "",
        f"Saving {cmp['saving_gb']:.3f} GiB ({cmp['saving_pct']:.1f} %); peak on / off {cmp['memory_ratio']:.3f}; "
        f"step time on / off {cmp['step_time_ratio']:.2f}; "
        f"largest relative loss difference {cmp['max_loss_rel_diff']:.1e}.",
    ]
    return lines


def gpu_tables(result: dict) -> list[str]:
    """``benchmarks/bench_gpu.py``: humanline DPO against TRL's DPOTrainer on one GPU (or its ``--tiny`` CPU mode)."""
    job, cmp = result["job"], result["comparisons"]
    lines = [
        f"{job['n_params']:,} parameters, {job['precision']}, {job['pairs']} pairs of {job['prompt_len']} + "
        f"{job['completion_len']} tokens per step, {job['steps']} steps ({job['warmup']} warm-up not timed) on "
        f"{job['device_name'] or job['device']}. {job['flops_formula']}.",
        "",
        "| framework | tokens/s | median s/step | MFU | sync ms (% of step) | peak GPU GiB | peak RSS GiB |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, a in result["arms"].items():
        mfu = "–" if a["mfu"] is None else f"{a['mfu']:.1%}"
        gpu = "–" if a["peak_gpu_memory_gb"] is None else f"{a['peak_gpu_memory_gb']:.2f}"
        lines.append(
            f"| {name} | {a['tokens_per_s']:,.0f} | {a['median_s']:.3f} | {mfu} | "
            f"{a['sync_median_ms']:.2f} ({a['sync_pct_of_step']:.1f} %) | {gpu} | {a['peak_rss_gb']:.2f} |"
        )
    return [
        *lines,
        "",
        f"Throughput ours / TRL {cmp['throughput_ours_vs_trl']:.2f}; peak memory ours / TRL "
        f"{cmp['peak_memory_ours_vs_trl']:.2f} ({cmp['memory_measure']}).",
    ]


# File-name prefix -> (section title, the benchmark script, its tables). A JSON of another benchmark is refused.
KINDS: dict[str, tuple[str, str, Callable[[dict], list[str]]]] = {
    "bench_trl_": ("Training speed and memory against TRL", "bench_train.py", train_tables),
    "bench_grpo_": ("GRPO groups with a shared prompt", "bench_train.py --mode grpo", train_tables),
    "bench_lora_": ("LoRA against full weights and TRL", "bench_train.py --mode lora", train_tables),
    "bench_humanline_": ("Humanline against plain DPO (single pass)", "bench_train.py --mode humanline", train_tables),
    "bench_overhead_": ("Humanline overhead, paired steps", "bench_overhead.py", overhead_tables),
    "bench_online_dpo_": ("Online DPO against TRL's OnlineDPOTrainer", "bench_online_dpo.py", online_tables),
    "bench_online_": ("Online GRPO against TRL's GRPOTrainer", "bench_online.py", online_tables),
    "page_faults_": ("Page faults per step", "page_faults.py", page_fault_tables),
    "profile_memory_": ("Activations saved for the backward", "profile_memory.py", memory_tables),
    "profile_sampling_": ("Top-p sampling in a rollout", "profile_sampling.py", sampling_tables),
    "bench_gpu_": ("One GPU: humanline DPO against TRL's DPOTrainer", "bench_gpu.py", gpu_tables),
    "activation_checkpointing_": ("Activation checkpointing: memory", "bench_checkpointing.py", checkpointing_tables),
}


def kind(path: Path) -> tuple[str, str, Callable[[dict], list[str]]]:
    """The section title, script and tables of a results file, by its name (longest prefix first)."""
    for prefix in sorted(KINDS, key=len, reverse=True):
        if path.name.startswith(prefix):
            return KINDS[prefix]
    raise SystemExit(f"error: {path}: no table for this benchmark; add its prefix to KINDS in {__file__}")


def command(result: dict, script: str) -> str:
    """The command that produced a results file, as recorded (or rebuilt from its arguments)."""
    if "command" in result:
        return result["command"]
    if "argv" in result:
        return " ".join(["python benchmarks/profile_memory.py", *result["argv"]])
    return f"python benchmarks/{script}"


def section(path: Path, root: Path) -> list[str]:
    """One results file: its title, command, machine and tables."""
    title, script, tables = kind(path)
    result = json.loads(path.read_text(encoding="utf-8"))
    env = result.get("env") or result["environment"]
    return [
        f"## {title}: `{path.stem}`",
        "",
        f"`{command(result, script)}`",
        "",
        env_line(env, commit_date(path, root)),
        "",
        *tables(result),
        "",
    ]


def benchmarks_page(root: Path) -> str:
    """The whole of ``benchmarks/RESULTS.md``."""
    lines = [
        "# Benchmark results",
        "",
        "Every table of `benchmarks/results/*.json`, written by `scripts/results_pages.py` (do not edit by hand). "
        "Each section names the command that measured it, the machine and the package versions; numbers from "
        "different machines are not comparable with each other. How the benchmarks work and how to run them: "
        "the Performance page of the documentation (`docs/performance.md`).",
        "",
    ]
    for path in sorted((root / "benchmarks" / "results").glob("*.json")):
        lines += section(path, root)
    return "\n".join(lines).rstrip("\n") + "\n"
