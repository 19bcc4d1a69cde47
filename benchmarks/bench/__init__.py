"""Training speed and peak memory: hl_lightning vs TRL's DPOTrainer / KTOTrainer on the same job.

    .venv/bin/pip install -e '.[bench]'                     # TRL + psutil: benchmark-only extras
    .venv/bin/python benchmarks/bench_train.py                # DPO and KTO vs TRL, embedded SmolLM2, 25 steps
    .venv/bin/python benchmarks/bench_train.py --pad-to-length 512          # ~512-token sequences
    .venv/bin/python benchmarks/bench_train.py --mode humanline             # humanline DPO vs plain DPO
    .venv/bin/python benchmarks/bench_train.py --mode lora --pad-to-length 512   # LoRA vs full, vs TRL (PEFT)
    .venv/bin/python benchmarks/bench_train.py --model tiny-random --steps 3 --warmup 1 --mode all  # smoke

Every arm (one framework x one objective) runs in a fresh subprocess, one after another, so that its peak
RSS is its own and no arm competes with another for the cores; ``--rounds`` (default 3) repeats the arms
interleaved (A B A B ...) and every ratio is the median of the per-round ratios with a bootstrap 95 % CI.
Both frameworks get the same model
directory, the same conversational rows (the shipped arithmetic data, rendered by the same chat template),
the same batch, max length, optimizer (fused AdamW, same lr / betas / weight decay, constant lr), beta,
precision (fp32), no gradient clipping unless ``--max-grad-norm``, no gradient checkpointing, no
evaluation, logging or checkpoints, data loading in the main process. Each optimizer step is timed with
the wall clock from the framework's step-begin hook to its step-end hook (forward, backward, optimizer
step, zero_grad; data loading excluded in both); the first ``--warmup`` steps are dropped.

Results go to ``benchmarks/results/bench_<mode>_<tag>.{json,md}`` (with the package versions); the last line
printed is ``speedup_vs_trl dpo=<ratio> kto=<ratio> dpo_vs_trl_same_allocator=<ratio>`` (TRL's median
seconds per step / ours; the last one against TRL run with the allocator setting our modules apply,
``hl_lightning.runtime``), for
``--mode humanline`` ``humanline_overhead=<pct>%``, for ``--mode lora``
``lora_vs_trl memory_vs_full=<ratio> speedup_vs_peft=<ratio> sync_pct=<pct>``.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DESCRIPTION = __doc__  # the --help text of benchmarks/bench_train.py
ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
SCRIPT = ROOT / "benchmarks" / "bench_train.py"  # the entry point that each arm's child process re-runs
