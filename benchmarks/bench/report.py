"""Statistics over the timed steps, the comparisons between arms, and the markdown / closing-line report."""

from __future__ import annotations

import os
import platform
import statistics
from pathlib import Path


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


def arm_summary(r: dict, warmup: int) -> dict:
    """One arm's entry in the report, from the result its child process wrote."""
    timed = r["step_times"][warmup:]
    summary = {**summarize(timed), "peak_rss_gb": r["peak_rss_bytes"] / 1e9,
               "rss_before_train_gb": r["rss_before_train_bytes"] / 1e9,
               "mean_tokens": r.get("mean_tokens"), "truncated": r.get("truncated"),
               "step_times": r["step_times"], "wall_s": r["wall_s"]}
    if r.get("sync_times"):
        summary["sync_median_ms"] = 1000 * statistics.median(r["sync_times"][warmup:] or r["sync_times"])
    return summary
