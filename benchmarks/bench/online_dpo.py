"""Online DPO, ours against TRL's ``OnlineDPOTrainer`` (``trl.experimental``): the same model, prompts, sampling,
lr, beta and fp32 on CPU.

TRL's trainer samples 2 completions per prompt at every step, scores both and trains on (higher, lower), a tie
included (the first is chosen). Ours: ``DPOModule`` + ``OnlineDataModule`` with N = 1 and 2 generations, whose
``PairBuilder`` drops a tied prompt. So that both train on the same number of pairs, both score with
:class:`TieBreakReward`: exact match plus a tiebreak below 1e-3 from a checksum of the text, so only two
identical completions tie (ours then drops the prompt and trains on the rest; each rollout's pair count is
recorded). Step times and generation tokens/s are taken as in ``bench.online``.
"""

from __future__ import annotations

import zlib

import torch

from hl_lightning.rewards import ExactMatchReward

from .online import lightning_step_ends, run_trl_trainer, time_our_generate, with_shape

ARMS = ["ours-dpo-online", "trl-dpo-online"]


def tiebreak(text: str) -> float:
    return 1e-3 * (zlib.crc32(text.encode()) % 1000) / 1000


class TieBreakReward(ExactMatchReward):
    """Exact match of the last integer, plus a deterministic tiebreak in [0, 1e-3) from the text."""

    name = "exact_match_tiebreak"

    def __call__(self, prompts: list[str], completions: list[str], **row_fields) -> list[float]:
        exact = super().__call__(prompts, completions, **row_fields)
        return [r + tiebreak(text) for r, text in zip(exact, completions, strict=True)]


def trl_reward(prompts, completions, answer, **kwargs) -> list[float]:
    """:class:`TieBreakReward` in TRL's reward-function form (conversational completions)."""
    texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
    return TieBreakReward()(prompts, texts, answer=answer)


def run_ours(spec: dict) -> dict:
    """Our DPOModule + OnlineDataModule, N = 1, 2 completions per prompt."""
    from functools import partial

    import lightning.pytorch as pl

    from hl_lightning.modules import DPOModule
    from hl_lightning.online import OnlineDataModule
    from hl_lightning.online.builders import PairBuilder

    module = DPOModule(
        model=spec["model_dir"],
        beta=spec["beta"],
        optimizer=partial(torch.optim.AdamW, lr=spec["lr"], weight_decay=0.0, fused=True),
    )
    data = OnlineDataModule(
        prompts=spec["prompts"],
        reward=TieBreakReward(),
        builder=PairBuilder(min_gap=0.0),
        tokenizer=spec["model_dir"],
        sample_every_n_steps=1,
        num_generations=2,
        prompts_per_step=spec["prompts_per_step"],
        max_new_tokens=spec["max_new_tokens"],
        temperature=spec["temperature"],
        top_p=spec["top_p"],
        seed=spec["seed"],
    )
    record = {"gen_s": 0.0, "gen_tokens": 0, "ends": [], "pairs": []}
    time_our_generate(record)
    ends = lightning_step_ends(record, on_batch=lambda batch: record["pairs"].append(len(batch.chosen.input_ids)))
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
        callbacks=[ends],
    )
    trainer.fit(module, datamodule=data)
    return with_shape(record, module.policy)


def run_trl(spec: dict) -> dict:
    """TRL's OnlineDPOTrainer with transformers generation on CPU, the same settings."""
    from trl.experimental.online_dpo import OnlineDPOConfig, OnlineDPOTrainer

    return run_trl_trainer(
        spec,
        OnlineDPOTrainer,
        OnlineDPOConfig,
        trl_reward,
        per_device_train_batch_size=spec["prompts_per_step"],
        max_new_tokens=spec["max_new_tokens"],
        beta=[spec["beta"]],
    )
