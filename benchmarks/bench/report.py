"""Statistics over the timed steps, the comparisons between arms, and the markdown / closing-line report."""

from __future__ import annotations

import os
import platform
import random
import statistics
from pathlib import Path


def summarize(times: list[float]) -> dict:
    s = sorted(times)
    deciles = statistics.quantiles(s, n=10, method="inclusive") if len(s) > 1 else [s[0]] * 9
    quartiles = statistics.quantiles(s, n=4, method="inclusive") if len(s) > 1 else [s[0]] * 3
    return {
        "median_s": statistics.median(s),
        "mean_s": statistics.mean(s),
        "min_s": s[0],
        "max_s": s[-1],
        "p10_s": deciles[0],
        "p90_s": deciles[-1],
        "iqr_s": quartiles[2] - quartiles[0],
        "n": len(s),
    }


def environment() -> dict:
    import lightning
    import torch
    import transformers

    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "lightning": lightning.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
    }
    for package in ("trl", "peft"):
        try:
            env[package] = __import__(package).__version__
        except ImportError:
            env[package] = None
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [
            line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")
        ]
        env["cpu"] = names[0] if names else None
    return env


def ratio(num: float | None, den: float | None) -> float | None:
    return None if not num or not den else num / den


# name -> (numerator arm, denominator arm, field): each round gives num / den; the report gives their median.
RATIOS = {
    ("dpo", "speedup_vs_trl"): ("trl-dpo", "ours-dpo", "median_s"),
    ("dpo", "memory_vs_trl"): ("ours-dpo", "trl-dpo", "peak_rss_gb"),
    ("kto", "speedup_vs_trl"): ("trl-kto", "ours-kto", "median_s"),
    ("kto", "memory_vs_trl"): ("ours-kto", "trl-kto", "peak_rss_gb"),
    ("dpo", "speedup_vs_trl_retain"): ("trl-dpo-retain", "ours-dpo", "median_s"),
    ("dpo", "retain_speedup"): ("ours-dpo-noretain", "ours-dpo", "median_s"),
    ("dpo", "retain_memory"): ("ours-dpo", "ours-dpo-noretain", "peak_rss_gb"),
    ("dpo", "trl_retain_speedup"): ("trl-dpo", "trl-dpo-retain", "median_s"),
    ("dpo", "share_prompt_speedup"): ("ours-dpo-noshare", "ours-dpo", "median_s"),
    ("kto", "share_prompt_speedup"): ("ours-kto-noshare", "ours-kto", "median_s"),
    ("dpo", "lean_memory"): ("ours-dpo", "ours-dpo-notlean", "peak_rss_gb"),
    ("dpo", "lean_speedup"): ("ours-dpo-notlean", "ours-dpo", "median_s"),
    ("kto", "lean_memory"): ("ours-kto", "ours-kto-notlean", "peak_rss_gb"),
    ("grpo", "share_prompt_speedup_g4"): ("ours-grpo4-noshare", "ours-grpo4", "median_s"),
    ("grpo", "share_prompt_memory_g4"): ("ours-grpo4", "ours-grpo4-noshare", "peak_rss_gb"),
    ("grpo", "share_prompt_speedup_g8"): ("ours-grpo8-noshare", "ours-grpo8", "median_s"),
    ("grpo", "share_prompt_memory_g8"): ("ours-grpo8", "ours-grpo8-noshare", "peak_rss_gb"),
    ("humanline", "step_ratio"): ("ours-dpo-humanline", "ours-dpo-plain", "median_s"),
    ("lora", "memory_vs_trl_full"): ("ours-dpo-lora-humanline", "trl-dpo", "peak_rss_gb"),
    ("lora", "memory_vs_ours_full"): ("ours-dpo-lora-humanline", "ours-dpo-humanline", "peak_rss_gb"),
    ("lora", "speedup_vs_trl_peft"): ("trl-dpo-peft", "ours-dpo-lora-humanline", "median_s"),
    ("lora", "speedup_vs_ours_full"): ("ours-dpo-humanline", "ours-dpo-lora-humanline", "median_s"),
}


def median_ci(values: list[float], level: float = 0.95, draws: int = 2000, seed: int = 0) -> list[float]:
    """Percentile bootstrap CI of the median of ``values`` (seeded); one value gives [v, v]."""
    rng = random.Random(seed)
    medians = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(draws))
    return [medians[int((1 - level) / 2 * draws)], medians[int((1 + level) / 2 * draws) - 1]]


def stat(values: list[float]) -> dict:
    return {"median": statistics.median(values), "ci": median_ci(values), "rounds": values}


def compare(rounds: list[dict]) -> dict:
    """Every ratio of :data:`RATIOS` whose arms ran, per round (arms of a round ran back to back), as
    ``{"median", "ci" (bootstrap 95 %), "rounds"}``; plus the humanline overhead and the LoRA sync share."""
    out: dict = {}
    for (group, name), (num, den, field) in RATIOS.items():
        values = [ratio(r[num][field], r[den][field]) for r in rounds if num in r and den in r]
        if values and None not in values:
            out.setdefault(group, {})[name] = stat(values)
    if "humanline" in out:
        out["humanline"]["overhead_pct"] = stat([100 * (v - 1) for v in out["humanline"]["step_ratio"]["rounds"]])
    lora = [r["ours-dpo-lora-humanline"] for r in rounds if "ours-dpo-lora-humanline" in r]
    if lora and all(a.get("sync_median_ms") for a in lora):
        out.setdefault("lora", {})["sync_pct_of_step"] = stat([a["sync_median_ms"] / 10 / a["median_s"] for a in lora])
    return out


def merge_rounds(rounds: list[dict]) -> dict:
    """One entry per arm over all rounds: statistics of every timed step, the median peak RSS of its processes,
    each round's median s/step."""
    merged = {}
    for arm in rounds[0]:
        runs = [r[arm] for r in rounds if arm in r]
        merged[arm] = {
            **summarize([t for a in runs for t in a["timed"]]),
            "peak_rss_gb": statistics.median(a["peak_rss_gb"] for a in runs),
            "round_median_s": [a["median_s"] for a in runs],
            "rounds": len(runs),
            "mean_tokens": runs[0]["mean_tokens"],
            "wall_s": sum(a["wall_s"] for a in runs),
        }
        fractions = [f for r in rounds if arm in r and (f := fraction_of_peak(r, arm)) is not None]
        merged[arm]["fraction_of_peak"] = statistics.median(fractions) if fractions else None
        syncs = [a["sync_median_ms"] for a in runs if a.get("sync_median_ms") is not None]
        if syncs:
            merged[arm]["sync_median_ms"] = statistics.median(syncs)
    return merged


def fraction_of_peak(round_: dict, arm: str) -> float | None:
    """Model FLOPs of a step / median s per step / the process's measured fp32 matmul peak, in one round. A TRL
    arm does the same job as our arm of its objective (``trl-dpo`` as ``ours-dpo``), so it takes that arm's model
    FLOPs: the work a framework repeats (a prompt per completion, logits at prompt positions) does not count."""
    a = round_[arm]
    ours = arm.replace("trl-", "ours-").removesuffix("-retain")
    flops = a.get("model_flops") or round_.get(ours, {}).get("model_flops")
    if not flops or not a.get("peak_flops"):
        return None
    return flops / a["median_s"] / a["peak_flops"]


def fmt(x: float | None, spec: str = ".2f") -> str:
    return "n/a" if x is None else format(x, spec)


LABELS = {
    ("dpo", "speedup_vs_trl"): "DPO speedup vs TRL (TRL s/step / ours)",
    ("dpo", "memory_vs_trl"): "DPO peak RSS ours / TRL",
    ("kto", "speedup_vs_trl"): "KTO speedup vs TRL",
    ("kto", "memory_vs_trl"): "KTO peak RSS ours / TRL",
    ("dpo", "speedup_vs_trl_retain"): "DPO speedup vs TRL with freed memory retained (trl-dpo-retain / ours)",
    ("dpo", "trl_retain_speedup"): "TRL DPO: retained freed memory speedup (trl-dpo / trl-dpo-retain)",
    ("dpo", "retain_speedup"): "DPO retain_cpu_memory speedup (ours-dpo-noretain / ours-dpo)",
    ("dpo", "retain_memory"): "DPO peak RSS retain_cpu_memory / not",
    ("dpo", "share_prompt_speedup"): "DPO share_prompt speedup",
    ("dpo", "lean_memory"): "DPO peak RSS lean_activations / plain modules",
    ("dpo", "lean_speedup"): "DPO lean_activations speedup (plain s/step / lean)",
    ("kto", "lean_memory"): "KTO peak RSS lean_activations / plain modules",
    ("kto", "share_prompt_speedup"): "KTO share_prompt speedup",
    ("grpo", "share_prompt_speedup_g4"): "GRPO share_prompt speedup, groups of 4",
    ("grpo", "share_prompt_memory_g4"): "GRPO share_prompt peak RSS shared / plain, groups of 4",
    ("grpo", "share_prompt_speedup_g8"): "GRPO share_prompt speedup, groups of 8",
    ("grpo", "share_prompt_memory_g8"): "GRPO share_prompt peak RSS shared / plain, groups of 8",
    ("humanline", "overhead_pct"): "humanline DPO (clip + sync every step) overhead vs plain DPO, %",
    ("lora", "memory_vs_trl_full"): "LoRA humanline DPO peak RSS / TRL full DPO",
    ("lora", "memory_vs_ours_full"): "LoRA humanline DPO peak RSS / our full humanline DPO",
    ("lora", "speedup_vs_trl_peft"): "LoRA humanline DPO speedup vs TRL PEFT DPO (no sync)",
    ("lora", "speedup_vs_ours_full"): "LoRA humanline DPO speedup vs our full humanline DPO",
    ("lora", "sync_pct_of_step"): "LoRA adapter sync, % of a step",
}


def markdown(report: dict) -> str:
    cfg, env = report["config"], report["env"]
    lines = [
        f"# Training benchmark: {report['tag']}",
        "",
        f"`{report['command']}`",
        "",
        f"Model `{cfg['model']}`, fp32, {cfg['pairs']} DPO pairs / {cfg['kto_items']} KTO items / "
        f"{cfg.get('groups', 2)} GRPO groups per step, "
        f"max length {cfg['max_length']}, mean {cfg['data']['mean_tokens']:.0f} (max {cfg['data']['max_tokens']}) "
        f"tokens per sequence, fused AdamW lr {cfg['lr']:g} wd {cfg['weight_decay']:g}, "
        f"grad clip {cfg['max_grad_norm'] or 'off'}, no gradient checkpointing; {cfg['steps']} steps per arm and "
        f"round, first {cfg['warmup']} dropped; {cfg['rounds']} interleaved rounds (every arm once per round, "
        "each in its own process, in the same order).",
        f"torch {env['torch']}, transformers {env['transformers']}, lightning {env['lightning']}, "
        f"TRL {env.get('trl')}, peft {env.get('peft')}, {env['cpus']} CPUs ({env.get('cpu')}), "
        f"{env['torch_threads']} torch threads.",
        "",
        "| arm | median s/step (all rounds) | per-round medians | p10-p90 s | fraction of fp32 peak | peak RSS GB "
        "(median) | steps timed |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, a in report["arms"].items():
        per_round = ", ".join(f"{v:.3f}" for v in a["round_median_s"])
        lines.append(
            f"| {name} | {a['median_s']:.3f} | {per_round} | {a['p10_s']:.3f}-{a['p90_s']:.3f} | "
            f"{fmt(a.get('fraction_of_peak'), '.1%')} | {a['peak_rss_gb']:.2f} | {a['n']} |"
        )
    lines += ["", "| comparison | median of per-round ratios | bootstrap 95 % CI | per round |", "|---|---|---|---|"]
    for (group, name), label in LABELS.items():
        if name in report["comparisons"].get(group, {}):
            c = report["comparisons"][group][name]
            lines.append(
                f"| {label} | {c['median']:.2f} | [{c['ci'][0]:.2f}, {c['ci'][1]:.2f}] | "
                f"{', '.join(f'{v:.2f}' for v in c['rounds'])} |"
            )
    return "\n".join(lines) + "\n"


def _median(comp: dict, group: str, name: str) -> str:
    return fmt(comp.get(group, {}).get(name, {}).get("median"))


def summary_lines(report: dict) -> list[str]:
    """The machine-readable closing lines: the speedup line comes last unless the mode is humanline or lora."""
    comp, lines = report["comparisons"], []
    if "humanline" in comp:
        lines.append(f"humanline_overhead={_median(comp, 'humanline', 'overhead_pct')}%")
    if "lora" in comp:
        lines.append(
            f"lora_vs_trl memory_vs_full={_median(comp, 'lora', 'memory_vs_trl_full')} "
            f"speedup_vs_peft={_median(comp, 'lora', 'speedup_vs_trl_peft')} "
            f"sync_pct={_median(comp, 'lora', 'sync_pct_of_step')}"
        )
    if "grpo" in comp:
        lines.append(
            f"grpo_share_prompt_speedup g4={_median(comp, 'grpo', 'share_prompt_speedup_g4')} "
            f"g8={_median(comp, 'grpo', 'share_prompt_speedup_g8')}"
        )
    if report["mode"] not in ("humanline", "lora", "grpo"):
        lines.append(
            f"speedup_vs_trl dpo={_median(comp, 'dpo', 'speedup_vs_trl')} "
            f"kto={_median(comp, 'kto', 'speedup_vs_trl')} "
            f"dpo_vs_trl_same_allocator={_median(comp, 'dpo', 'speedup_vs_trl_retain')}"
        )
    return lines


def arm_summary(r: dict, warmup: int) -> dict:
    """One arm's entry for one round, from the result its child process wrote."""
    timed = r["step_times"][warmup:]
    summary = {
        **summarize(timed),
        "peak_rss_gb": r["peak_rss_bytes"] / 1e9,
        "timed": timed,
        "rss_before_train_gb": r["rss_before_train_bytes"] / 1e9,
        "mean_tokens": r.get("mean_tokens"),
        "truncated": r.get("truncated"),
        "wall_s": r["wall_s"],
        "model_flops": r.get("model_flops"),
        "peak_flops": r.get("peak_flops"),
    }
    if r.get("sync_times"):
        summary["sync_median_ms"] = 1000 * statistics.median(r["sync_times"][warmup:] or r["sync_times"])
    return summary
