"""One optimizer step of each objective module on a tiny model: the policy moves; the reference moves only
with RefSyncCallback, and then holds the weights of the step before."""

from functools import partial

import pytest
import torch

from callbacks import RefSyncCallback
from hl_lightning.data import GroupDataModule, PreferenceDataModule, UnpairedPreferenceDataModule
from hl_lightning.modules import DPOModule, GRPOModule, KTOModule
from hl_lightning.objectives import ClipLogRatio
from tests.helpers import WeightRecorder, flat, trainer

CASES = {
    "dpo": (DPOModule, PreferenceDataModule, 2),
    "kto": (KTOModule, UnpairedPreferenceDataModule, 4),
    "grpo": (GRPOModule, GroupDataModule, 1),
}


def build(name: str):
    module_cls, data_cls, batch_size = CASES[name]
    module = module_cls(model="tiny-random", clip=ClipLogRatio(), optimizer=partial(torch.optim.AdamW, lr=1e-3))
    data = data_cls(tokenizer="tiny-random", batch_size=batch_size, max_length=64, max_prompt_length=48)
    return module, data


@pytest.mark.parametrize("name", list(CASES))
def test_step_moves_policy_but_not_reference_without_sync(name, tmp_path):
    module, data = build(name)
    before = flat(module.policy)
    trainer(1, [], tmp_path, limit_val_batches=0).fit(module, datamodule=data)
    assert not torch.equal(flat(module.policy), before)
    assert torch.equal(flat(module.ref), before)


@pytest.mark.parametrize("name", list(CASES))
def test_steps_follow_the_sync_rule(name, tmp_path):
    module, data = build(name)
    recorder = WeightRecorder()
    trainer(3, [RefSyncCallback(every_n_steps=1), recorder], tmp_path, limit_val_batches=0).fit(
        module, datamodule=data)
    for t in (1, 2):
        assert torch.equal(recorder.ref[t], recorder.policy[t - 1])
        assert not torch.equal(recorder.ref[t], recorder.policy[t])


def test_kto_refuses_a_batch_without_a_mismatched_pair():
    module, data = build("kto")
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    single = {k: v[:1] for k, v in batch.items()}
    with pytest.raises(ValueError, match="at least 2 items per batch"):
        module.compute_loss(single)


def test_kto_kl_is_a_floored_constant():
    """z0 = max(0, mean over pairs of the summed (clipped) log-ratio); no gradient flows through it."""
    module, data = build("kto")
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    with torch.no_grad():
        next(module.policy.parameters()).mul_(1.5)  # make policy != reference
    kl = module.kl_estimate(batch)
    assert not kl.requires_grad
    assert kl.item() == pytest.approx(max(0.0, module.kl_mean(batch).item()), rel=1e-6)


def test_grpo_logs_reward_statistics():
    module, data = build("grpo")
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    out = module.compute_loss(batch)
    rewards = batch["rewards"]
    assert out.metrics["reward"].item() == pytest.approx(rewards.mean().item())
    assert out.metrics["reward_std"].item() == pytest.approx(rewards.std(unbiased=False).item())
    assert {"clip_ratio", "kl", "humanline/unclipped_frac"} <= set(out.metrics)
