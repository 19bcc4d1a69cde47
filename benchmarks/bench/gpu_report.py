"""The report of ``benchmarks/bench_gpu.py``: per-arm throughput, MFU, sync share and peak memory, the ratios of
ours to TRL, and the markdown and closing line."""

from __future__ import annotations

import statistics

from .report import fmt, ratio, summarize

FLOPS_FORMULA = (
    "FLOPs per step = 6 * N * tokens (policy forward + backward) + 2 * N * tokens (reference forward), N = the "
    "model's parameters (tied embedding counted once), tokens = pairs * 2 * (prompt + completion); attention "
    "scores left out; the same count for both frameworks"
)
TRL_SYNC_NOTE = (
    "TRL runs with sync_ref_model=True, ref_model_sync_steps=1, ref_model_mixup_alpha=1.0: the same work per step "
    "as humanline syncing (a reference forward and one full copy of the weights), but TRL copies after the "
    "optimizer step, so its reference equals the current policy (log-ratios 0, loss ln 2 at every step), while ours "
    "copies before it (the reference lags one step). TRL has no log-ratio clip (an elementwise op). Our module "
    "runs each pair's prompt once for both completions (share_prompt); TRL runs it twice."
)


def arm_summary(result: dict, job: dict, warmup: int) -> dict:
    """One arm's statistics over its timed steps (the first ``warmup`` left out)."""
    timed = result["step_times"][warmup:]
    stats = summarize(timed)
    median_s = stats["median_s"]
    syncs = result["sync_times"][warmup:] or result["sync_times"]
    sync_ms = 1000 * statistics.median(syncs) if syncs else None
    achieved = job["flops_per_step"] / median_s
    peak = job["peak_tflops"]
    gpu = result.get("peak_gpu_memory_bytes")
    return {
        **stats,
        "timed": timed,
        "tokens_per_s": job["tokens_per_step"] / median_s,
        "achieved_tflops": achieved / 1e12,
        "mfu": achieved / (peak * 1e12) if peak else None,
        "sync_median_ms": sync_ms,
        "sync_pct_of_step": None if sync_ms is None else sync_ms / (10 * median_s),
        "syncs": len(result["sync_times"]),
        "peak_gpu_memory_gb": None if gpu is None else gpu / 2**30,
        "peak_rss_gb": result["peak_rss_bytes"] / 2**30,
        "mean_loss": statistics.fmean(result["losses"]),
        "wall_s": result["wall_s"],
    }


def comparisons(arms: dict) -> dict:
    """Ours against TRL: throughput (TRL's median s/step / ours) and peak memory (ours / TRL; GPU memory on a GPU,
    else the process's peak RSS)."""
    ours, trl = arms["ours"], arms["trl"]
    memory = "peak_gpu_memory_gb" if ours["peak_gpu_memory_gb"] is not None else "peak_rss_gb"
    return {
        "throughput_ours_vs_trl": ratio(ours["tokens_per_s"], trl["tokens_per_s"]),
        "peak_memory_ours_vs_trl": ratio(ours[memory], trl[memory]),
        "memory_measure": memory,
    }


def closing_line(report: dict) -> str:
    """The last line printed: tokens/s and MFU of both arms and their ratio."""
    ours, trl = report["arms"]["ours"], report["arms"]["trl"]
    return (
        f"bench_gpu tokens_per_s ours={ours['tokens_per_s']:.0f} trl={trl['tokens_per_s']:.0f} "
        f"ratio={report['comparisons']['throughput_ours_vs_trl']:.2f} "
        f"mfu ours={fmt(ours['mfu'], '.3f')} trl={fmt(trl['mfu'], '.3f')}"
    )


def markdown(report: dict) -> str:
    job, env, comp = report["job"], report["env"], report["comparisons"]
    cfg = job["model_config"]
    lines = [
        f"# GPU benchmark, humanline DPO vs TRL DPOTrainer: {report['tag']}",
        "",
        f"`{report['command']}` ({report['date']})",
        "",
        f"Device: {job['device_name'] or 'CPU'}; bf16 dense peak {fmt(job['peak_tflops'], '.0f')} TFLOP/s "
        f"({job['peak_source']}). torch {env['torch']} (CUDA {env.get('cuda')}), transformers {env['transformers']}, "
        f"lightning {env['lightning']}, TRL {env.get('trl')}, Python {env['python']}, {env.get('cpu')}.",
        "",
        f"Model: random Llama, {job['n_params']:,} parameters ({job['n_params'] / 1e9:.2f}B; hidden "
        f"{cfg['hidden_size']}, {cfg['num_hidden_layers']} layers, {cfg['num_attention_heads']} heads / "
        f"{cfg['num_key_value_heads']} KV, MLP {cfg['intermediate_size']}, vocab {cfg['vocab_size']}, tied "
        f"embeddings), fp32 weights, precision {job['precision']}. Job: {job['pairs']} pairs per step of "
        f"synthetic token ids, prompt {job['prompt_len']} + completion {job['completion_len']} tokens "
        f"({job['tokens_per_step']} tokens per step), fused AdamW lr {job['lr']:g}, beta {job['beta']:g}, no "
        f"gradient clipping or checkpointing; {job['steps']} steps per arm, the first {job['warmup']} left out; "
        "each arm in its own process.",
        "",
        f"Ours: DPOModule with clip (ClipLogRatio -1.5 / 1.5) + RefSyncCallback(every_n_steps=1), Lightning Trainer. "
        f"{TRL_SYNC_NOTE}",
        "",
        f"{FLOPS_FORMULA}: {job['flops_per_step'] / 1e12:.2f} TFLOP per step. MFU = that / median s per step / peak.",
        "Steps and syncs are timed with the device synchronised at both ends.",
        "",
        "| arm | median s/step | p10-p90 s | tokens/s | TFLOP/s | MFU | sync ms (median) | sync % of step "
        "| peak GPU memory GiB | peak RSS GiB | mean loss | steps timed |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, a in report["arms"].items():
        lines.append(
            f"| {name} | {a['median_s']:.4f} | {a['p10_s']:.4f}-{a['p90_s']:.4f} | {a['tokens_per_s']:.0f} | "
            f"{a['achieved_tflops']:.2f} | {fmt(a['mfu'], '.1%')} | {fmt(a['sync_median_ms'])} | "
            f"{fmt(a['sync_pct_of_step'])} | {fmt(a['peak_gpu_memory_gb'])} | {a['peak_rss_gb']:.2f} | "
            f"{a['mean_loss']:.4f} | {a['n']} |"
        )
    lines += [
        "",
        "| ours / TRL | ratio |",
        "|---|---|",
        f"| throughput (tokens/s) | {fmt(comp['throughput_ours_vs_trl'])} |",
        f"| peak memory ({comp['memory_measure']}) | {fmt(comp['peak_memory_ours_vs_trl'])} |",
    ]
    return "\n".join(lines) + "\n"
