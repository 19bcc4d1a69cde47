"""What top-p sampling costs in a rollout: the full sort of the vocabulary against ``nucleus``'s 64 candidates.

    .venv/bin/python benchmarks/profile_sampling.py                     # SmolLM2, 12 rollouts per sampler
    .venv/bin/python benchmarks/profile_sampling.py --model tiny-random --rollouts 2   # smoke

One process, one model: rollouts of the online benchmark's shape (2 shipped arithmetic prompts x 4 completions,
<= 32 new tokens, temperature 0.7, top-p 0.95, through ``hl_lightning.models.generation.generate``), alternating
the sampler (full sort, candidates, full sort, ...) on the same prompts. The full sort is ``nucleus`` with
every token a candidate, which is what ``pick`` did before. Timed per rollout: the seconds inside ``pick`` and
the whole rollout. Reported: medians over rollouts after the first pair. Results:
``benchmarks/results/profile_sampling_<tag>.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import RESULTS
from bench.data import model_dir
from bench.report import environment

import hl_lightning.models.decode as decode


def full_sort_pick(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """``pick`` with the whole vocabulary sorted at every step (the sampler before ``nucleus``'s candidates)."""
    probs = torch.softmax(logits.float() / temperature, -1)
    kept, ids = decode.nucleus(probs, top_p, candidates=probs.shape[-1])
    return ids.gather(-1, torch.multinomial(kept, 1)).squeeze(-1)


def timed_rollout(model, tokenizer, prompts: list[str], sampler, seed: int) -> dict:
    """One rollout with ``sampler`` standing in for ``pick``: seconds in the sampler, in all, tokens."""
    clock, default = {"s": 0.0}, decode.pick

    def timed(*args):
        t0 = time.perf_counter()
        token = sampler(*args)
        clock["s"] += time.perf_counter() - t0
        return token

    from hl_lightning.models.generation import generate

    decode.pick, t0 = timed, time.perf_counter()
    try:
        out = generate(
            model, tokenizer, prompts, max_new_tokens=32, temperature=0.7, top_p=0.95, num_return_sequences=4, seed=seed
        )
    finally:
        decode.pick = default
    return {"sampling_s": clock["s"], "rollout_s": time.perf_counter() - t0, "tokens": out.num_tokens}


def measure(model_name: str, rollouts: int) -> dict:
    from hl_lightning.data.arithmetic import DATA_DIR
    from hl_lightning.models.loading import load_causal_lm, load_tokenizer

    directory = model_dir(model_name, Path(tempfile.mkdtemp()))
    model, tokenizer = load_causal_lm(str(directory)), load_tokenizer(str(directory))
    rows = [json.loads(line) for line in (DATA_DIR / "prompts_train.jsonl").read_text().splitlines() if line]
    samplers = {"full sort": full_sort_pick, "64 candidates": decode.pick}
    runs = {name: [] for name in samplers}
    for i in range(rollouts):
        prompts = [r["prompt"] for r in rows[2 * i : 2 * i + 2]]
        for name, sampler in samplers.items():
            runs[name].append(timed_rollout(model, tokenizer, prompts, sampler, seed=i))
    return runs


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2")
    p.add_argument("--rollouts", type=int, default=12, help="rollouts per sampler (the first pair is dropped)")
    args = p.parse_args(argv)
    runs = measure(args.model, args.rollouts)
    rows = {
        name: {k: statistics.median(r[k] for r in rs[1:] or rs) for k in ("sampling_s", "rollout_s", "tokens")}
        for name, rs in runs.items()
    }
    stem = RESULTS / f"profile_sampling_{args.model}"
    stem.with_suffix(".json").write_text(
        json.dumps({"args": vars(args), "env": environment(), "runs": runs, "summary": rows}, indent=2) + "\n"
    )
    command = " ".join(["python", "benchmarks/profile_sampling.py", *(argv or sys.argv[1:])])
    lines = [
        f"# Top-p sampling in a rollout: {args.model}",
        "",
        f"`{command}`",
        "",
        "| sampler | median s in sampling per rollout | median s per rollout | median tokens |",
        "|---|---|---|---|",
    ]
    lines += [f"| {n} | {r['sampling_s']:.3f} | {r['rollout_s']:.2f} | {r['tokens']:.0f} |" for n, r in rows.items()]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
