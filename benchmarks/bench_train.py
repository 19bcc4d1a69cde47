"""Training speed and peak memory: hl_lightning vs TRL's DPOTrainer / KTOTrainer on the same job.

    .venv/bin/python benchmarks/bench_train.py --help     # what it measures, how, and every option

The entry point only: the code is in the ``bench`` package beside this file (``args`` the command line,
``data`` the shared model and rows, ``arms_ours`` / ``arms_trl`` the two frameworks, ``proc`` one process
per arm, ``report`` the statistics and the report, ``cli`` the parent's plan). Each arm's child process
re-runs this file with ``--child``. The names below are re-exported for tests/perf/test_bench_script.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:  # run as a script it is there already; loaded by importlib it may not be
    sys.path.insert(0, _HERE)

from bench import RESULTS, ROOT  # noqa: E402  (also sets HF_HUB_OFFLINE / TOKENIZERS_PARALLELISM)
from bench.args import ABLATION_ARMS, ALL_ARMS, HUMANLINE_ARMS, LORA_ARMS, TRL_ARMS, arms_for, parse_args  # noqa: E402
from bench.arms_ours import run_ours  # noqa: E402
from bench.arms_trl import run_trl  # noqa: E402
from bench.cli import main  # noqa: E402
from bench.data import CONTEXT, build_data, context_text, model_dir  # noqa: E402
from bench.proc import child, run_arm  # noqa: E402
from bench.report import compare, environment, fmt, markdown, merge_rounds, ratio, summarize, summary_lines  # noqa: E402
from bench.rss import current_rss_bytes, peak_rss_bytes  # noqa: E402

__all__ = [
    "ABLATION_ARMS",
    "ALL_ARMS",
    "CONTEXT",
    "HUMANLINE_ARMS",
    "LORA_ARMS",
    "RESULTS",
    "ROOT",
    "TRL_ARMS",
    "arms_for",
    "build_data",
    "child",
    "compare",
    "context_text",
    "current_rss_bytes",
    "environment",
    "fmt",
    "main",
    "markdown",
    "merge_rounds",
    "model_dir",
    "parse_args",
    "peak_rss_bytes",
    "ratio",
    "run_arm",
    "run_ours",
    "run_trl",
    "summarize",
    "summary_lines",
]

if __name__ == "__main__":
    main()
