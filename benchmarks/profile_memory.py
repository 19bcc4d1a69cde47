"""Where a DPO step's activation memory goes: the tensors autograd saves during the loss, by kind.

    .venv/bin/python benchmarks/profile_memory.py                       # SmolLM2, 2 pairs x ~512 tokens (prompt)
    .venv/bin/python benchmarks/profile_memory.py --long-part completion
    .venv/bin/python benchmarks/profile_memory.py --model tiny-random --pad-to-length 64   # smoke

The same rows as ``bench_train.py --pad-to-length N`` (the shipped pairs with a long system prompt, or a long
completion). One batch of ``--pairs`` pairs goes through ``DPOModule.compute_loss`` (policy with autograd,
reference under no_grad) inside ``torch.autograd.graph.saved_tensors_hooks``; every saved tensor is counted once
(by storage) and filed by its shape: attention scores (a square L x L last pair of dims), vocabulary-wide (last
dim V), MLP-wide (last dim = the intermediate size), hidden-wide (last dim = the hidden size), other. Then the
backward runs and the process's peak RSS is read. Results: ``benchmarks/results/profile_memory_<tag>.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import RESULTS
from bench.data import build_data, model_dir
from bench.report import environment
from bench.rss import current_rss_bytes, peak_rss_bytes


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2")
    p.add_argument("--pad-to-length", type=int, default=512)
    p.add_argument("--long-part", choices=["prompt", "completion"], default="prompt")
    p.add_argument("--pairs", type=int, default=2)
    p.add_argument("--share-prompt", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--lean", action=argparse.BooleanOptionalAction, default=True, help="DPOModule lean_activations")
    p.add_argument("--tag", default=None)
    p.add_argument("--out-dir", type=Path, default=RESULTS)
    return p.parse_args(argv)


def kind(shape: tuple[int, ...], config) -> str:
    """The class of a saved tensor, from its shape (see the module docstring)."""
    if len(shape) >= 2 and shape[-1] == shape[-2] and shape[-1] > 1:
        return "attention (L x L)"
    last = shape[-1] if shape else 0
    names = {
        config.vocab_size: "vocabulary (V)",
        config.intermediate_size: "MLP (intermediate)",
        config.hidden_size: "hidden",
    }
    return names.get(last, "other")


def saved_by_kind(loss_fn, module) -> tuple[object, dict[str, int]]:
    """Run ``loss_fn`` and sum the bytes of the tensors autograd saves, each storage once, by :func:`kind`
    (parameters, which exist anyway, left out)."""
    import torch

    seen = {p.untyped_storage().data_ptr() for p in module.parameters()}
    totals: dict[str, int] = {}
    config = module.policy.config

    def pack(t: torch.Tensor) -> torch.Tensor:
        key = t.untyped_storage().data_ptr()
        if key not in seen:
            seen.add(key)
            label = kind(tuple(t.shape), config)
            totals[label] = totals.get(label, 0) + t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = loss_fn()
    return out, totals


def one_batch(args: argparse.Namespace, work: Path):
    """The DPO module and its first training batch, on the bench's rows."""
    from hl_lightning.data import PreferenceDataModule
    from hl_lightning.models.loading import load_tokenizer
    from hl_lightning.modules import DPOModule

    mdir = model_dir(args.model, work)
    data = build_data(
        argparse.Namespace(pad_to_length=args.pad_to_length, long_part=args.long_part), load_tokenizer(str(mdir)), work
    )
    max_length = args.pad_to_length + 16
    dm = PreferenceDataModule(
        path=data["files"]["pairs"],
        val_path=data["files"]["pairs"],
        tokenizer=str(mdir),
        batch_size=args.pairs,
        max_length=max_length,
        max_prompt_length=max_length - 1,
    )
    dm.setup("fit")
    module = DPOModule(model=str(mdir), share_prompt=args.share_prompt, lean_activations=args.lean)
    return module, next(iter(dm.train_dataloader())), data


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    tag = args.tag or f"{args.model}_L{args.pad_to_length}{'' if args.long_part == 'prompt' else 'c'}" + (
        "" if args.share_prompt else "_noshare"
    ) + ("" if args.lean else "_notlean")
    with tempfile.TemporaryDirectory(prefix="hl-prof-") as tmp:
        module, batch, data = one_batch(args, Path(tmp))
        rss_before = current_rss_bytes()
        out, totals = saved_by_kind(lambda: module.compute_loss(batch), module)
        out.loss.backward()
    gb = 2**30
    result = {
        "argv": sys.argv[1:],
        "environment": environment(),
        "mean_tokens": data["mean_tokens"],
        "saved_bytes": totals,
        "saved_total_bytes": sum(totals.values()),
        "rss_before_loss_bytes": rss_before,
        "peak_rss_bytes": peak_rss_bytes(),
    }
    lines = [
        f"# Saved activations of one DPO step: {tag}",
        "",
        f"`python benchmarks/profile_memory.py {' '.join(sys.argv[1:])}`",
        "",
        f"{args.pairs} pairs, mean {data['mean_tokens']:.0f} tokens per sequence, share_prompt "
        f"{args.share_prompt}, lean_activations {args.lean}. Peak RSS {peak_rss_bytes() / gb:.2f} GB (before the "
        f"loss {rss_before / gb:.2f}).",
        "",
        "| saved for backward | GB |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v / gb:.3f} |" for k, v in sorted(totals.items(), key=lambda kv: -kv[1])]
    lines.append(f"| **total** | **{sum(totals.values()) / gb:.3f}** |")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / f"profile_memory_{tag}.json").write_text(json.dumps(result, indent=1))
    (args.out_dir / f"profile_memory_{tag}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
