"""Minor page faults of a DPO step with and without retained freed memory (``hl_lightning.runtime``).

    .venv/bin/python benchmarks/page_faults.py                        # SmolLM2, 2 pairs, 12 steps per mode
    .venv/bin/python benchmarks/page_faults.py --model tiny-random --steps 3   # smoke

Each mode runs in its own process (the setting is process-wide): the setup of ``bench_overhead.py`` (one
DPOModule, fused AdamW, the same batches), plain DPO steps timed from the forward to ``zero_grad``, and
``getrusage``'s minor faults counted around each step. Reported: the median over steps after the first two.
Results: ``benchmarks/results/page_faults_<tag>.{json,md}``.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_overhead
from bench import RESULTS
from bench.report import environment


def child(mode: str, model: str, steps: int) -> dict:
    """Steps of one mode: (faults, seconds) per step."""
    if mode == "default":  # bench_overhead's setup retains freed memory, as a fit does: undo it for this mode
        import hl_lightning.runtime

        hl_lightning.runtime.retain_freed_memory = lambda: False
    args = bench_overhead.parse_args(["--model", model, "--pairs-of-steps", str(steps), "--warmup", "1"])
    module, optimizer, objectives, batches = bench_overhead.setup(args, Path(tempfile.mkdtemp()))
    module.objective, faults, seconds = objectives["plain"], [], []
    for batch in batches:
        f0, t0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
        module.compute_loss(batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        seconds.append(time.perf_counter() - t0)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
    return {"faults": faults[2:], "seconds": seconds[2:]}


def main() -> None:
    model = sys.argv[sys.argv.index("--model") + 1] if "--model" in sys.argv else "smollm2"
    steps = int(sys.argv[sys.argv.index("--steps") + 1]) if "--steps" in sys.argv else 12
    if "--child" in sys.argv:
        print(json.dumps(child(sys.argv[sys.argv.index("--child") + 1], model, steps)))
        return
    modes = {}
    for mode in ("default", "retain"):
        out = subprocess.run(
            [sys.executable, __file__, "--child", mode, "--model", model, "--steps", str(steps)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        modes[mode] = json.loads(out.strip().splitlines()[-1])
    rows = {
        m: {"median_faults": statistics.median(r["faults"]), "median_s": statistics.median(r["seconds"])}
        for m, r in modes.items()
    }
    result = {"model": model, "steps": steps, "env": environment(), "modes": modes, "summary": rows}
    stem = RESULTS / f"page_faults_{model}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    command = " ".join(["python", "benchmarks/page_faults.py", *sys.argv[1:]])
    lines = [
        f"# Minor page faults per DPO step: {model}",
        "",
        f"`{command}`",
        "",
        "| freed memory | median minor faults per step | median s/step |",
        "|---|---|---|",
    ]
    lines += [f"| {m} | {r['median_faults']:.0f} | {r['median_s']:.3f} |" for m, r in rows.items()]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
