"""The hl_lightning arms: DPOModule / KTOModule / GRPOModule fitted by a Lightning Trainer, each step timed."""

from __future__ import annotations

import statistics
import time

from .rss import current_rss_bytes


def run_ours(arm: str, spec: dict) -> dict:
    import lightning.pytorch as pl

    from hl_lightning.callbacks import RefSyncCallback

    times: list[float] = []
    sync_times: list[float] = []
    marks: dict = {}
    kto = "kto" in arm
    humanline = arm.endswith("humanline")  # ours-dpo-humanline, ours-dpo-lora-humanline
    module, data = module_and_data(arm, spec, kto=kto, humanline=humanline)
    callbacks: list = [step_timer(times, marks)]
    if humanline:
        time_sync(module, sync_times)
        callbacks.append(RefSyncCallback(every_n_steps=1))
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        precision="32-true",
        max_steps=spec["steps"],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=callbacks,
        gradient_clip_val=spec["max_grad_norm"] or None,
    )
    trainer.fit(module, datamodule=data)
    from .flops import mean_step_flops

    flops = mean_step_flops(module.policy, data.train_dataloader())  # the job's model FLOPs, the same for TRL
    return {
        "step_times": times,
        "sync_times": sync_times,
        "rss_before_train_bytes": marks["rss_before_train"],
        "mean_tokens": statistics.mean(len(s) for s in sequences(data.train_set)),
        "truncated": data._truncated,
        "model_flops": None if "lora" in arm else flops["step"],
    }  # LoRA: a frozen backward costs less


def sequences(rows: list[dict]) -> list[list[int]]:
    """The token ids of every sequence the model sees, of DPO, KTO or GRPO items."""
    if "sequences" in rows[0]:
        return [seq["input_ids"] for r in rows for seq in r["sequences"]]
    if "chosen" in rows[0]:
        return [r[k]["input_ids"] for r in rows for k in ("chosen", "rejected")]
    return [r["prompt_ids"] + r["completion_ids"] for r in rows]


def module_and_data(arm: str, spec: dict, *, kto: bool, humanline: bool) -> tuple:
    """The LightningModule and the DataModule of one arm."""
    from functools import partial

    import torch

    from hl_lightning.data import GroupDataModule, PreferenceDataModule, UnpairedPreferenceDataModule
    from hl_lightning.modules import DPOModule, GRPOModule, KTOModule
    from hl_lightning.objectives import ClipLogRatio

    optimizer = partial(torch.optim.AdamW, lr=spec["lr"], weight_decay=spec["weight_decay"], fused=True)
    common = dict(
        model=spec["model_dir"],
        beta=spec["beta"],
        optimizer=optimizer,
        clip=ClipLogRatio(log_eps_P=-1.5, log_eps_R=1.5) if humanline else None,
        share_prompt=not arm.endswith("noshare"),
        lean_activations=not arm.endswith("notlean"),
        retain_cpu_memory=not arm.endswith("noretain"),
        peft=lora_config(spec) if "lora" in arm else None,
    )
    data_args = dict(
        tokenizer=spec["model_dir"],
        max_length=spec["max_length"],
        max_prompt_length=spec["max_length"] - 1,
        seed=spec["seed"],
    )
    # val_path = the same file: every row is a training row, as for TRL (validation never runs).
    if arm.startswith("ours-grpo"):  # ours-grpo4, ours-grpo8-noshare, ...: groups of 4 or 8 completions
        module = GRPOModule(**{k: v for k, v in common.items() if k != "beta"})
        path = spec["data"]["files"][f"groups{arm.split('-')[1].removeprefix('grpo')}"]
        data = GroupDataModule(path=path, val_path=path, batch_size=spec["groups"], **data_args)
    elif kto:
        module = KTOModule(**common)
        path = spec["data"]["files"]["unpaired"]
        data = UnpairedPreferenceDataModule(path=path, val_path=path, batch_size=spec["kto_items"], **data_args)
    else:
        module = DPOModule(**common)
        path = spec["data"]["files"]["pairs"]
        data = PreferenceDataModule(path=path, val_path=path, batch_size=spec["pairs"], **data_args)
    return module, data


def lora_config(spec: dict):
    """The LoRA adapter of the lora arms (the same in TRL's PEFT arm): attention projections, alpha = 2 rank."""
    from peft import LoraConfig

    return LoraConfig(
        r=spec["lora_rank"],
        lora_alpha=2 * spec["lora_rank"],
        lora_dropout=0.0,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
        task_type="CAUSAL_LM",
    )


def step_timer(times: list[float], marks: dict):
    """A Lightning callback appending each training batch's seconds to ``times`` (data loading excluded)."""
    import lightning.pytorch as pl

    class StepTimer(pl.Callback):
        def on_train_start(self, trainer, pl_module):
            marks["rss_before_train"] = current_rss_bytes()

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self.t0 = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            times.append(time.perf_counter() - self.t0)

    return StepTimer()


def time_sync(module, sync_times: list[float]) -> None:
    """Wrap ``module.sync_reference`` so that each call's seconds are appended to ``sync_times``."""
    sync = module.sync_reference

    def timed_sync() -> None:
        t0 = time.perf_counter()
        sync()
        sync_times.append(time.perf_counter() - t0)

    module.sync_reference = timed_sync
