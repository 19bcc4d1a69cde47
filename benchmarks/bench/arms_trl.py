"""The TRL arms: DPOTrainer / KTOTrainer on the same model, rows and settings, each optimizer step timed."""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

from .rss import current_rss_bytes


def run_trl(arm: str, spec: dict) -> dict:
    import datasets
    import transformers

    from hl_lightning.models.loading import load_tokenizer

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    times: list[float] = []
    marks: dict = {}
    kto = arm == "trl-kto"
    if arm.endswith("retain"):  # trl-dpo-retain: TRL with the allocator setting our modules apply
        from hl_lightning.runtime import retain_freed_memory

        retain_freed_memory()
    tokenizer = load_tokenizer(spec["model_dir"])
    path = spec["data"]["files"]["unpaired" if kto else "pairs"]
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line]
    dataset = datasets.Dataset.from_list(rows)
    trainer = trl_trainer(spec, dataset, tokenizer, kto=kto, peft=arm.endswith("peft"))
    trainer.add_callback(trl_step_timer(times, marks))
    trainer.train()
    lengths = sequence_lengths(trainer.train_dataset, kto=kto)
    return {
        "step_times": times,
        "rss_before_train_bytes": marks["rss_before_train"],
        "mean_tokens": statistics.mean(lengths),
        "truncated": sum(n > spec["max_length"] for n in lengths),
    }


def trl_trainer(spec: dict, dataset, tokenizer, *, kto: bool, peft: bool = False):
    """TRL's KTOTrainer or DPOTrainer with the benchmark's settings; ``peft``: DPOTrainer with the LoRA adapter
    of our lora arm (its reference = the adapter disabled; TRL refuses ``sync_ref_model`` with PEFT)."""
    import torch

    common = dict(
        output_dir=tempfile.mkdtemp(prefix="hl-bench-trl-"),
        max_steps=spec["steps"],
        learning_rate=spec["lr"],
        weight_decay=spec["weight_decay"],
        optim="adamw_torch_fused",
        lr_scheduler_type="constant",
        warmup_steps=0,
        max_grad_norm=spec["max_grad_norm"],
        bf16=False,
        fp16=False,
        use_cpu=True,
        gradient_checkpointing=False,
        logging_strategy="no",
        save_strategy="no",
        eval_strategy="no",
        report_to=[],
        disable_tqdm=True,
        dataloader_num_workers=0,
        max_length=spec["max_length"],
        beta=spec["beta"],
        seed=spec["seed"],
        model_init_kwargs={"dtype": torch.float32},
        precompute_ref_log_probs=False,
    )
    if kto:
        from trl import KTOConfig, KTOTrainer

        args = KTOConfig(per_device_train_batch_size=spec["kto_items"], **common)
        return KTOTrainer(model=spec["model_dir"], args=args, train_dataset=dataset, processing_class=tokenizer)
    from trl import DPOConfig, DPOTrainer

    from .arms_ours import lora_config

    args = DPOConfig(per_device_train_batch_size=spec["pairs"], **common)
    return DPOTrainer(
        model=spec["model_dir"],
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=lora_config(spec) if peft else None,
    )


def trl_step_timer(times: list[float], marks: dict):
    """A TrainerCallback appending each optimizer step's seconds to ``times`` (data loading excluded)."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            marks["rss_before_train"] = current_rss_bytes()

        def on_step_begin(self, args, state, control, **kwargs):
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            times.append(time.perf_counter() - self.t0)

    return StepTimer()


def sequence_lengths(ds, *, kto: bool) -> list[int]:
    """Tokens per sequence (prompt + completion) in TRL's tokenised training set."""
    if kto:
        return [len(p) + len(c) for p, c in zip(ds["prompt_ids"], ds["completion_ids"], strict=True)]
    return [
        len(p) + len(c)
        for p, ch, rj in zip(ds["prompt_ids"], ds["chosen_ids"], ds["rejected_ids"], strict=True)
        for c in (ch, rj)
    ]
