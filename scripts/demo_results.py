"""Run what ``make demo`` trains and commit its numbers: ``results/demo/result.json``.

Usage (from the repository, after ``make install``, with nothing else running on the machine):
``.venv/bin/python scripts/demo_results.py`` then ``.venv/bin/python scripts/results_pages.py`` (which puts the
numbers into the README). The run time is the training command's (install and model conversion excluded).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = "configs/humanline/dpo.yaml"  # what `make demo` runs (Makefile)
HELD_OUT = ROOT / "outputs" / "humanline-dpo" / "heldout.json"


def environment() -> dict:
    """The machine and versions the demo ran on."""
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
    }


def main() -> int:
    """Train with the demo's config, then write its held-out scores, steps and run time."""
    command = [str(Path(sys.executable).with_name("hl-lightning")), "fit", "--config", CONFIG]
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        print(f"error: the demo run failed (exit {proc.returncode}); nothing written", file=sys.stderr)
        return 1
    held_out = json.loads(HELD_OUT.read_text(encoding="utf-8"))
    result = {
        "command": f"hl-lightning fit --config {CONFIG}",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "wall_s": wall,
        "metric": held_out["metric"],
        "history": held_out["history"],
        "prompts": len(held_out.get("final_answers") or []),
        "env": environment(),
    }
    out = ROOT / "results" / "demo" / "result.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
