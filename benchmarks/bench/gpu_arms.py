"""The two arms of ``benchmarks/bench_gpu.py``, each run in its own process: our humanline DPO (DPOModule with
clip + RefSyncCallback k = 1, a Lightning Trainer) and TRL's DPOTrainer (``sync_ref_model`` every step), on the same
model, pairs, batch, lengths, optimizer and precision. Steps and reference syncs are timed with the device
synchronised at both ends (on a GPU), so a time is the work's, not the launch's."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

from .gpu_job import EOS_ID, PAD_ID, build_model, matmul_params, synthetic_pairs
from .rss import peak_rss_bytes


def synchronize(device: str) -> None:
    """Wait for the GPU's queued work (nothing to wait for on a CPU)."""
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable, device: str, times: list[float]) -> Callable:
    """``fn`` with each call's seconds, device synchronised before and after, appended to ``times``."""

    def wrapper(*args, **kwargs):
        synchronize(device)
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        synchronize(device)
        times.append(time.perf_counter() - t0)
        return out

    return wrapper


def run_arm(arm: str, spec: dict) -> dict:
    """Run ``arm`` ("ours" or "trl") of ``spec``; its step and sync seconds, losses and peak memory."""
    import torch

    torch.manual_seed(spec["seed"])
    result = {"ours": run_ours, "trl": run_trl}[arm](spec)
    cuda = spec["device"] == "cuda"
    return {
        **result,
        "device_name": torch.cuda.get_device_name() if cuda else None,
        "peak_gpu_memory_bytes": torch.cuda.max_memory_allocated() if cuda else None,
        "peak_rss_bytes": peak_rss_bytes(),
    }


def run_ours(spec: dict) -> dict:
    """DPOModule (humanline clip) + RefSyncCallback(every_n_steps=1), fitted by a Lightning Trainer."""
    from functools import partial

    import lightning.pytorch as pl
    import torch
    from torch.utils.data import DataLoader

    from hl_lightning.callbacks import RefSyncCallback
    from hl_lightning.data.preference import collate_pairs
    from hl_lightning.modules import DPOModule
    from hl_lightning.objectives import ClipLogRatio

    device = spec["device"]
    model = build_model(spec["config"], spec["seed"], device)
    n_params = matmul_params(model)
    module = DPOModule(
        model=model,
        beta=spec["beta"],
        clip=ClipLogRatio(log_eps_P=-1.5, log_eps_R=1.5),
        optimizer=partial(torch.optim.AdamW, lr=spec["lr"], weight_decay=0.0, fused=True),
    )
    sync_times: list[float] = []
    module.sync_reference = timed(module.sync_reference, device, sync_times)  # RefSyncCallback calls this
    loader = DataLoader(pair_items(spec), batch_size=spec["pairs"], collate_fn=partial(collate_pairs, pad_id=PAD_ID))
    timer = lightning_timer(device)
    trainer = pl.Trainer(
        accelerator="gpu" if device == "cuda" else "cpu",
        devices=1,
        precision=spec["precision"],
        max_steps=spec["steps"],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        callbacks=[timer, RefSyncCallback(every_n_steps=1)],
    )
    trainer.fit(module, train_dataloaders=loader)
    return {"step_times": timer.times, "sync_times": sync_times, "losses": timer.losses, "n_params": n_params}


def pair_items(spec: dict) -> list[dict]:
    """The synthetic pairs as our data modules' items (what ``collate_pairs`` batches), in order."""
    from hl_lightning.data.tokenize import join

    return [
        {
            "chosen": join(r["prompt_ids"], r["chosen_ids"]),
            "rejected": join(r["prompt_ids"], r["rejected_ids"]),
            "index": i,
        }
        for i, r in enumerate(synthetic_pairs(spec))
    ]


def lightning_timer(device: str):
    """A Lightning callback timing each training batch (forward, backward, sync, optimizer step) and keeping its
    loss."""
    import lightning.pytorch as pl

    class StepTimer(pl.Callback):
        def __init__(self) -> None:
            self.times: list[float] = []
            self.losses: list[float] = []

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            synchronize(device)
            self.t0 = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            synchronize(device)
            self.times.append(time.perf_counter() - self.t0)
            self.losses.append(float(outputs["loss"]))

    return StepTimer()


def run_trl(spec: dict) -> dict:
    """TRL's DPOTrainer on the same pre-tokenised pairs, its reference synced by ``sync_ref_model`` every step."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    device = spec["device"]
    model = build_model(spec["config"], spec["seed"], device)
    n_params = matmul_params(model)
    trainer = trl_trainer(spec, model, copy.deepcopy(model), datasets.Dataset.from_list(synthetic_pairs(spec)))
    sync_times: list[float] = []
    for callback in trainer.callback_handler.callbacks:
        if type(callback).__name__ == "SyncRefModelCallback":
            callback.sync_target_model = timed(callback.sync_target_model, device, sync_times)
    step_times: list[float] = []
    trainer.add_callback(trl_timer(device, step_times))  # after TRL's sync callback: its step includes the sync
    out = trainer.train()
    return {"step_times": step_times, "sync_times": sync_times, "losses": [out.training_loss], "n_params": n_params}


def trl_trainer(spec: dict, model, ref_model, dataset):
    """DPOTrainer with the benchmark's settings; the dataset is already token ids, so TRL's tokenisation is
    skipped (a tokenizer with only the pad and EOS tokens stands in for the processing class)."""
    from trl import DPOConfig, DPOTrainer

    class PreTokenizedDPOTrainer(DPOTrainer):
        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            return dataset  # prompt_ids / chosen_ids / rejected_ids, what TRL's tokenisation would produce

    args = DPOConfig(
        output_dir=spec["work_dir"],  # nothing is saved there (save_strategy "no")
        max_steps=spec["steps"],
        per_device_train_batch_size=spec["pairs"],
        learning_rate=spec["lr"],
        weight_decay=0.0,
        optim="adamw_torch_fused",
        lr_scheduler_type="constant",
        warmup_steps=0,
        max_grad_norm=0.0,
        bf16=spec["precision"] == "bf16-mixed",
        use_cpu=spec["device"] == "cpu",
        gradient_checkpointing=False,
        logging_strategy="no",
        save_strategy="no",
        eval_strategy="no",
        report_to=[],
        disable_tqdm=True,
        dataloader_num_workers=0,
        max_length=spec["prompt_len"] + spec["completion_len"],
        beta=spec["beta"],
        seed=spec["seed"],
        precompute_ref_log_probs=False,
        sync_ref_model=True,
        ref_model_sync_steps=1,
        ref_model_mixup_alpha=1.0,
    )
    return PreTokenizedDPOTrainer(
        model=model, ref_model=ref_model, args=args, train_dataset=dataset, processing_class=id_tokenizer()
    )


def id_tokenizer():
    """A tokenizer that knows only the pad, EOS and unknown tokens (ids 0, 1, 2): TRL asks for one."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": PAD_ID, "<eos>": EOS_ID, "<unk>": 2}
    backend = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")


def trl_timer(device: str, times: list[float]):
    """A TrainerCallback timing each optimizer step (forward, backward, optimizer step, sync)."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            synchronize(device)
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            synchronize(device)
            times.append(time.perf_counter() - self.t0)

    return StepTimer()
