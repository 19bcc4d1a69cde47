"""One process per arm: the parent starts a fresh Python process for each arm, the child runs it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from . import ROOT, SCRIPT
from .arms_ours import run_ours
from .arms_trl import run_trl
from .flops import matmul_peak_flops
from .rss import peak_rss_bytes


def run_arm(arm: str, spec: dict, work: Path) -> dict:
    """Run one arm in a fresh Python process; return its result."""
    spec_path = work / f"{arm}.spec.json"
    out_path = work / f"{arm}.result.json"
    spec_path.write_text(json.dumps({**spec, "out": str(out_path)}))
    cmd = [sys.executable, str(SCRIPT), "--child", arm, "--spec", str(spec_path)]
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0 or not out_path.exists():
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-8000:])
        raise SystemExit(f"arm {arm} failed (exit {proc.returncode})")
    result = json.loads(out_path.read_text())
    result["wall_s"] = time.perf_counter() - started
    return result


def child(arm: str, spec: dict) -> None:
    """The child process: run ``arm`` of ``spec`` and write its result to ``spec["out"]``."""
    import torch

    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    torch.manual_seed(spec["seed"])
    result = run_trl(arm, spec) if arm.startswith("trl") else run_ours(arm, spec)
    result["peak_rss_bytes"] = peak_rss_bytes()
    result["peak_flops"] = matmul_peak_flops()  # this process's fp32 matmul peak, after the run (warm)
    Path(spec["out"]).write_text(json.dumps(result))
