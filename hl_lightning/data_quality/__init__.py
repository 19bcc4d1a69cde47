"""``hl-lightning data-quality --model M --data FILE``: how far an offline file is from the model you will train.

Humanline assumes the offline completions are not too far from the reference (the paper's Assumption 4.1). The
paper measures it as the mean per-token log-prob of the offline completions under the initial model: its worst
quartile, [-1.03, -0.36], trained significantly worse. This command scores every completion of a file of pairs,
unpaired rows or groups (read, tokenised and truncated as training does), prints a table per role, and writes a
JSON summary and a histogram (PNG) to ``--report-dir``, and, with ``--output``, one JSON line per completion.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch
import yaml

from hl_lightning.data_quality.report import (
    PAPER_WORST_QUARTILE,
    histogram,
    role_stats,
    summarize,
    table,
    verdict,
    write_json,
    write_rows,
)
from hl_lightning.data_quality.score import Completion, Score, read_completions, score_completions
from hl_lightning.extras import MissingExtraError
from hl_lightning.models.loading import load_causal_lm, load_tokenizer, torch_dtype

__all__ = [
    "PAPER_WORST_QUARTILE",
    "Completion",
    "Score",
    "main",
    "read_completions",
    "role_stats",
    "score_completions",
    "score_file",
    "summarize",
    "table",
    "verdict",
]


def pick_device(name: str | None) -> torch.device:
    """``name`` as a torch device (``"cpu"``, ``"cuda"``, ``"cuda:1"``); None: the first GPU if there is one."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"--device {name!r} is not a torch device ({err}); e.g. cpu, cuda or cuda:0") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name!r}: torch sees no CUDA GPU here; use --device cpu")
    return device


def score_file(
    model: str,
    data: str | Path,
    columns: dict[str, str | None] | None = None,
    max_length: int = 256,
    max_prompt_length: int = 128,
    batch_size: int = 8,
    limit: int | None = None,
    dtype: str = "float32",
    device: str | None = None,
    skip_invalid: bool = False,
    progress: bool = True,
) -> list[Score]:
    """The mean per-token log-prob of every completion of ``data`` under ``model``, in file order.

    Args:
        model: the model spec of the reference (the model you will train): "smollm2", "tiny-random", a
            ``save_pretrained`` directory or a Hub id.
        data: the offline file (see :func:`~hl_lightning.data_quality.score.read_completions`).
        columns, max_length, max_prompt_length, skip_invalid: as the data modules' options of the same names; use
            your training config's values.
        batch_size: completions per forward pass.
        limit: score only the first ``limit`` rows.
        dtype: the model's dtype ("float32", "bfloat16", "float16"); the LM head and the log-softmax run in fp32
            either way.
        device: "cpu", "cuda", ...; None: the first GPU if there is one, else the CPU.
        progress: show a tqdm bar over the batches.
    """
    where, _ = pick_device(device), torch_dtype(dtype)  # bad options fail before anything is read
    tokenizer = load_tokenizer(model)
    completions = read_completions(data, tokenizer, columns, max_length, max_prompt_length, limit, skip_invalid)
    policy = load_causal_lm(model, dtype).to(where).eval()  # type: ignore[arg-type]  # transformers types `to` narrowly
    return score_completions(policy, completions, tokenizer.pad_token_id, batch_size, progress)


def columns_option(text: str | None) -> dict[str, str | None] | None:
    """``--columns`` as a mapping: YAML or JSON text such as ``'{prompt: question}'`` or ``'{prompt: null}'``."""
    if text is None:
        return None
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = None
    ok = isinstance(value, dict) and all(
        isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in value.items()
    )
    if not ok:
        raise ValueError(f"--columns {text!r} is not a mapping of column names, e.g. --columns '{{prompt: question}}'")
    return value


def parser() -> argparse.ArgumentParser:
    """The options of ``hl-lightning data-quality``."""
    p = argparse.ArgumentParser(prog="hl-lightning data-quality", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="the model you will train (its reference): smollm2, a directory")
    p.add_argument("--data", required=True, help="the offline file: JSONL, JSON, Parquet or a save_to_disk folder")
    p.add_argument("--columns", help="map our column names to the file's, e.g. '{prompt: question}'")
    p.add_argument("--max-length", type=int, default=256, help="most prompt + completion tokens (default 256)")
    p.add_argument("--max-prompt-length", type=int, default=128, help="most prompt tokens (default 128)")
    p.add_argument("--batch-size", type=int, default=8, help="completions per forward pass (default 8)")
    p.add_argument("--limit", type=int, help="score only the first N rows")
    p.add_argument("--dtype", default="float32", help="float32 (default), bfloat16 or float16")
    p.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: a GPU if there is one)")
    p.add_argument("--skip-invalid", action="store_true", help="drop bad rows (counted) instead of stopping")
    p.add_argument("--report-dir", default="outputs/data-quality", help="where the JSON summary and the PNG go")
    p.add_argument("--output", help="also write one JSON line per completion to this file")
    return p


def main(args: list[str]) -> None:
    """The ``data-quality`` subcommand of ``hl-lightning``: score, print the table, write the report files."""
    options = parser().parse_args(args)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    scores = score_file(
        options.model,
        options.data,
        columns_option(options.columns),
        options.max_length,
        options.max_prompt_length,
        options.batch_size,
        options.limit,
        options.dtype,
        options.device,
        options.skip_invalid,
    )
    keys = ("model", "data", "columns", "max_length", "max_prompt_length", "limit", "dtype")
    summary = summarize(scores, **{key: getattr(options, key) for key in keys})
    written = write_report(scores, summary, Path(options.report_dir), options.output)
    print(table(summary))
    print("\n".join(written))


def write_report(scores: list[Score], summary: dict, report_dir: Path, output: str | None = None) -> list[str]:
    """Write ``<data>-summary.json`` and the histogram ``<data>-logps.png`` to ``report_dir`` and, when ``output``
    is given, one JSON line per completion there; return one line per file written (or skipped)."""
    stem = Path(str(summary["data"])).name.split(".")[0] or "data"
    lines = []
    try:
        png = histogram(scores, report_dir / f"{stem}-logps.png", f"{summary['data']} under {summary['model']}")
        lines.append(f"Histogram: {png}")
    except MissingExtraError as err:
        lines.append(f"Histogram skipped: {err}")
    lines.append(f"Summary: {write_json(summary, report_dir / f'{stem}-summary.json')}")
    if output:
        lines.append(f"Per completion (JSON Lines): {write_rows(scores, Path(output))}")
    return lines
