"""Online GRPO, ours against TRL's GRPOTrainer: the same model, prompts, sampling, lr, beta and fp32 on CPU.

Each optimizer step includes its rollout (sampling 4 completions for each of 2 prompts, scoring them); a step's
time is the wall clock between two consecutive step ends (the first from the start of training), so the rollout
counts in both frameworks wherever it happens. Generation is timed around each framework's sampling call: TRL's
``model.generate`` and our ``hl_lightning.online.rollout.generate`` (our own KV-cache loop,
``hl_lightning.models.decode``), each call's seconds and the tokens it generated (up to and including the first
end token); ours also includes rendering the prompts and decoding the texts.
"""

from __future__ import annotations

import itertools
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

ARMS = ["ours-grpo-online", "trl-grpo-online", "bare-kv-loop"]


def lightning_step_ends(record: dict, on_batch=None):
    """A Lightning callback appending the clock at the start of training and at each step's end to
    ``record["ends"]``; ``on_batch(batch)`` also sees each training batch."""
    import lightning.pytorch as pl

    class Ends(pl.Callback):
        def on_train_start(self, trainer, pl_module):
            record["ends"].append(time.perf_counter())

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            record["ends"].append(time.perf_counter())
            if on_batch is not None:
                on_batch(batch)

    return Ends()


def trl_step_ends(record: dict):
    """The same clock as :func:`lightning_step_ends`, as a transformers ``TrainerCallback``."""
    from transformers import TrainerCallback

    class Ends(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            record["ends"].append(time.perf_counter())

        def on_step_end(self, args, state, control, **kwargs):
            record["ends"].append(time.perf_counter())

    return Ends()


def count_new_tokens(output: torch.Tensor, prompt_len: int, eos_ids: set[int]) -> int:
    """Tokens generated per row up to and including its first end token, summed over rows."""
    total = 0
    for row in output[:, prompt_len:].tolist():
        ends = [i for i, t in enumerate(row) if t in eos_ids]
        total += ends[0] + 1 if ends else len(row)
    return total


def time_generate(model: torch.nn.Module, eos_ids: set[int], record: dict) -> None:
    """Wrap ``model.generate``: add each call's seconds and generated tokens to ``record``."""
    generate = model.generate

    def timed(*args, **kwargs):
        t0 = time.perf_counter()
        out = generate(*args, **kwargs)
        record["gen_s"] += time.perf_counter() - t0
        record["gen_tokens"] += count_new_tokens(out, kwargs["input_ids"].shape[1], eos_ids)
        return out

    model.generate = timed


def time_our_generate(record: dict) -> None:
    """Wrap the ``generate`` our rollouts call: add each call's seconds and generated tokens to ``record``."""
    from hl_lightning.online import rollout

    generate = rollout.generate

    def timed(*args, **kwargs):
        out = generate(*args, **kwargs)
        record["gen_s"] += out.seconds
        record["gen_tokens"] += out.num_tokens
        return out

    rollout.generate = timed


def with_shape(record: dict, model: torch.nn.Module) -> dict:
    """Add the model's shape (for model FLOPs) and this process's measured fp32 matmul peak to a record."""
    from .flops import matmul_peak_flops, model_shape

    return {**record, "shape": model_shape(model), "peak_flops": matmul_peak_flops()}


def eos_ids(tokenizer) -> set[int]:
    ids = {tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")}
    return {i for i in ids if isinstance(i, int) and i >= 0}


def run_ours(spec: dict) -> dict:
    """Our GRPOModule + OnlineDataModule, N = 1 (a rollout before every step)."""
    from functools import partial

    import lightning.pytorch as pl

    from hl_lightning.modules import GRPOModule
    from hl_lightning.online import OnlineDataModule
    from hl_lightning.rewards import ExactMatchReward

    module = GRPOModule(
        model=spec["model_dir"],
        kl_beta=spec["beta"],
        epsilon=0.2,
        optimizer=partial(torch.optim.AdamW, lr=spec["lr"], weight_decay=0.0, fused=True),
    )
    data = OnlineDataModule(
        prompts=spec["prompts"],
        reward=ExactMatchReward(),
        tokenizer=spec["model_dir"],
        sample_every_n_steps=1,
        num_generations=spec["num_generations"],
        prompts_per_step=spec["prompts_per_step"],
        max_new_tokens=spec["max_new_tokens"],
        temperature=spec["temperature"],
        top_p=spec["top_p"],
        seed=spec["seed"],
    )
    record = {"gen_s": 0.0, "gen_tokens": 0, "ends": []}
    time_our_generate(record)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=spec["steps"],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        callbacks=[lightning_step_ends(record)],
    )
    trainer.fit(module, datamodule=data)
    return with_shape(record, module.policy)


def mean_prompt_tokens(spec: dict) -> float:
    """Mean tokens of the shipped prompts as the model sees them (chat template, generation prompt)."""
    tokenizer = data_tokenizer(spec)
    rows = [json.loads(line) for line in Path(spec["prompts"]).read_text().splitlines() if line]
    return statistics.fmean(
        len(
            tokenizer.apply_chat_template(
                [{"role": "user", "content": r["prompt"]}], tokenize=True, add_generation_prompt=True, return_dict=True
            )["input_ids"]
        )
        for r in rows
    )


def data_tokenizer(spec: dict):
    from hl_lightning.models.loading import load_tokenizer

    return load_tokenizer(spec["model_dir"])


def trl_reward(prompts, completions, answer, **kwargs) -> list[float]:
    """Exact match of the last integer, as our ExactMatchReward."""
    from hl_lightning.data.arithmetic import parse_final_number

    texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
    return [1.0 if parse_final_number(t) == int(a) else 0.0 for t, a in zip(texts, answer, strict=True)]


def run_trl(spec: dict) -> dict:
    """TRL's GRPOTrainer with transformers generation on CPU, the same settings."""
    from trl import GRPOConfig, GRPOTrainer

    return run_trl_trainer(
        spec,
        GRPOTrainer,
        GRPOConfig,
        trl_reward,
        per_device_train_batch_size=spec["prompts_per_step"] * spec["num_generations"],
        num_generations=spec["num_generations"],
        max_completion_length=spec["max_new_tokens"],
        beta=spec["beta"],
        epsilon=0.2,
    )


def run_trl_trainer(spec: dict, trainer_cls, config_cls, reward, **options) -> dict:
    """Train a TRL online trainer on the arithmetic prompts (conversational, with their ``answer``) with the
    settings every TRL arm shares (fp32 on CPU, fused AdamW at a constant lr, no weight decay, the spec's
    sampling, no logging or saving) plus ``options`` in its config's own names; its steps and its ``generate``
    timed. The arm's record."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    rows = [json.loads(line) for line in Path(spec["prompts"]).read_text().splitlines() if line]
    dataset = datasets.Dataset.from_list(
        [{"prompt": [{"role": "user", "content": r["prompt"]}], "answer": r["answer"]} for r in rows]
    )
    args = config_cls(
        output_dir=tempfile.mkdtemp(prefix="hl-bench-trl-"),
        max_steps=spec["steps"],
        learning_rate=spec["lr"],
        weight_decay=0.0,
        optim="adamw_torch_fused",
        lr_scheduler_type="constant",
        warmup_steps=0,
        use_cpu=True,
        bf16=False,
        fp16=False,
        temperature=spec["temperature"],
        top_p=spec["top_p"],
        logging_strategy="no",
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        seed=spec["seed"],
        model_init_kwargs={"dtype": torch.float32},
        dataloader_num_workers=0,
        **options,
    )
    tokenizer = data_tokenizer(spec)
    trainer = trainer_cls(
        model=spec["model_dir"], reward_funcs=reward, args=args, train_dataset=dataset, processing_class=tokenizer
    )
    record = {"gen_s": 0.0, "gen_tokens": 0, "ends": []}
    time_generate(trainer.model, eos_ids(tokenizer), record)
    trainer.add_callback(trl_step_ends(record))
    trainer.train()
    return with_shape(record, trainer.model)


def run_bare(spec: dict) -> dict:
    """The practical limit of sampling here: a bare KV-cache loop at the online batch (prompts x generations),
    each prompt prefilled once and its cache expanded to its completions, top-p sampling with our sampler
    (``hl_lightning.models.decode.pick``, so the two differ in the loop, not the sampler), stopping when every
    row has ended; ``steps`` rounds of ``prompts_per_step`` prompts, timed like ``model.generate``. Its
    "steps" are rollouts only (no training)."""
    from transformers import AutoModelForCausalLM

    tokenizer = data_tokenizer(spec)
    model = AutoModelForCausalLM.from_pretrained(spec["model_dir"], dtype=torch.float32).eval()
    rows = [json.loads(line) for line in Path(spec["prompts"]).read_text().splitlines() if line]
    ends, record = (
        eos_ids(tokenizer),
        {"gen_s": 0.0, "gen_tokens": 0, "ends": [time.perf_counter()], "rollout_only": True},
    )
    torch.manual_seed(spec["seed"])
    n = spec["prompts_per_step"]
    for step in range(spec["steps"]):
        texts = [
            tokenizer.apply_chat_template(
                [{"role": "user", "content": r["prompt"]}], tokenize=False, add_generation_prompt=True
            )
            for r in rows[step * n : (step + 1) * n]
        ]
        enc = tokenizer(texts, padding=True, padding_side="left", add_special_tokens=False, return_tensors="pt")
        t0 = time.perf_counter()
        record["gen_tokens"] += bare_sample(model, enc, spec, ends)
        record["gen_s"] += time.perf_counter() - t0
        record["ends"].append(time.perf_counter())
    return with_shape(record, model)


@torch.no_grad()
def bare_sample(model, enc, spec: dict, ends: set[int]) -> int:
    """Sample ``num_generations`` completions of each row of ``enc``; return the tokens generated (to the end)."""
    from transformers import DynamicCache

    from hl_lightning.models.decode import pick

    g, mask = spec["num_generations"], enc["attention_mask"]
    position = (mask.cumsum(-1) - 1).clamp(min=0)
    cache = DynamicCache()
    logits = model(
        input_ids=enc["input_ids"], attention_mask=mask, position_ids=position, cache=cache, logits_to_keep=1
    ).logits[:, -1]
    cache.batch_repeat_interleave(g)
    logits, mask = logits.repeat_interleave(g, 0), mask.repeat_interleave(g, 0)
    last = position[:, -1:].repeat_interleave(g, 0)
    done, total, end_ids = torch.zeros(len(logits), dtype=torch.bool), 0, torch.tensor(sorted(ends))
    for _ in range(spec["max_new_tokens"]):
        token = pick(logits, spec["temperature"], spec["top_p"])
        total += int((~done).sum())
        done |= torch.isin(token, end_ids)
        if done.all():
            break
        mask, last = torch.cat([mask, torch.ones_like(mask[:, :1])], 1), last + 1
        logits = model(input_ids=token[:, None], attention_mask=mask, position_ids=last, cache=cache).logits[:, -1]
    return total


def summary(record: dict, warmup: int, spec: dict, prompt_tokens: float) -> dict:
    """Seconds per optimizer step (rollout included) after ``warmup`` steps, generation tokens/s and, from the
    spec and the mean prompt length, the fraction of the measured fp32 peak (model FLOPs of a mean step: the
    rollout's decode, and for a training arm the policy's forward and backward, the reference's if beta > 0)."""
    steps = [b - a for a, b in itertools.pairwise(record["ends"])][warmup:]
    out = {
        "median_s": statistics.median(steps),
        "steps": steps,
        "gen_tokens": record["gen_tokens"],
        "gen_s": record["gen_s"],
        "tokens_per_s": record["gen_tokens"] / record["gen_s"] if record["gen_s"] else 0,
    }
    if "pairs" in record:  # online DPO: the pairs each step trained on
        out["pairs"] = record["pairs"]
    if record.get("shape") and record.get("peak_flops"):
        new_per_step = record["gen_tokens"] / (len(record["ends"]) - 1)
        flops = online_step_flops(
            record["shape"], spec, prompt_tokens, new_per_step, train=not record.get("rollout_only", False)
        )
        out.update(model_flops=flops, fraction_of_peak=flops / out["median_s"] / record["peak_flops"])
    return out


def online_step_flops(shape: dict, spec: dict, prompt_tokens: float, new_tokens: float, train: bool) -> float:
    """Model FLOPs of one online GRPO step of ``prompts_per_step`` prompts of ``prompt_tokens`` tokens, each
    with ``num_generations`` completions that generate ``new_tokens`` tokens among them all per step."""
    from .flops import forward_flops

    n_prompts, g = spec["prompts_per_step"], spec["num_generations"]
    p, n = prompt_tokens, new_tokens / (n_prompts * g)  # tokens per prompt, generated tokens per completion
    total = n_prompts * forward_flops(shape, p, p * (p + 1) / 2, 1)  # each prompt's prefill (one LM head)
    total += n_prompts * g * forward_flops(shape, n, p * n + n * (n + 1) / 2, n)  # decoding, one token at a time
    if train:
        tokens = n_prompts * (p + g * n)
        attended = n_prompts * (p * (p + 1) / 2 + g * (p * n + n * (n + 1) / 2))
        total += (3 + int(spec["beta"] > 0)) * forward_flops(shape, tokens, attended, n_prompts * g * n)
    return total
