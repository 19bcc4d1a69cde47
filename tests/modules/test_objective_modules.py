"""Objective modules on a tiny model: what they feed their loss (rows by role, labels, advantages, the clip),
how a step moves policy and reference, and their refusals.

The pinning tests replace the one forward (``forward_logps``) by a fake whose log-probs depend on the model
(policy or reference) and on the token ids, then compare the module's loss and metrics with the loss object
applied by hand to the right rows: a module that swapped chosen and rejected, inverted KTO's labels, negated
GRPO's advantages or dropped its clip fails them.
"""

from functools import partial

import pytest
import torch

from hl_lightning.callbacks import RefSyncCallback
from hl_lightning.data import GroupDataModule, PreferenceDataModule, UnpairedPreferenceDataModule
from hl_lightning.models.logprobs import TokenLogps
from hl_lightning.modules import DPOModule, GRPOModule, IPOModule, KTOModule, SimPOModule
from hl_lightning.objectives import ClipLogRatio, DPOLoss, GRPOLoss, IPOLoss, KTOLoss, SimPOLoss
from tests.helpers import WeightRecorder, flat, trainer

CASES = {
    "dpo": (DPOModule, PreferenceDataModule, 2),
    "ipo": (IPOModule, PreferenceDataModule, 2),
    "kto": (KTOModule, UnpairedPreferenceDataModule, 4),
    "grpo": (GRPOModule, GroupDataModule, 1),
}
CLIP = ClipLogRatio(-0.3, 0.3)  # binds on the fake's log-ratios of +-0.4


def build(name: str, clip=CLIP, **kwargs):
    module_cls, data_cls, batch_size = CASES[name]
    module = module_cls(model="tiny-random", clip=clip, optimizer=partial(torch.optim.AdamW, lr=1e-3), **kwargs)
    data = data_cls(tokenizer="tiny-random", batch_size=batch_size, max_length=64, max_prompt_length=48)
    return module, data


def first_batch(data):
    data.setup("fit")
    return next(iter(data.train_dataloader()))


def fake_logps(module, model, rows) -> TokenLogps:
    """Policy: -0.05 * (id % 13) per completion token; reference: that plus 0.4 * ((id % 3) - 1), so the
    log-ratios are -0.4, 0 or +0.4 by token (the clip at +-0.3 binds on two thirds of them)."""
    ids = rows.input_ids[:, 1:].double()
    mask = rows.completion_mask[:, 1:] & rows.attention_mask[:, 1:].bool()
    logps = -0.05 * (ids % 13)
    if model is module.ref:
        logps = logps + 0.4 * ((ids % 3) - 1)
    else:
        assert model is module.policy
    return TokenLogps(torch.where(mask, logps, 0.0), mask)


def patched(module):
    module.forward_logps = partial(fake_logps, module)
    return module


def assert_same(out, expected):
    torch.testing.assert_close(out.loss, expected.loss, rtol=1e-6, atol=1e-9)
    assert set(out.metrics) >= set(expected.metrics)
    for key, value in expected.metrics.items():
        torch.testing.assert_close(out.metrics[key], value, rtol=1e-6, atol=1e-9, msg=key)


def pair_args(module, batch, roles=("chosen", "rejected"), ref=True):
    args = {}
    for role, rows in zip(roles, (batch.chosen, batch.rejected), strict=True):
        policy = fake_logps(module, module.policy, rows)
        args |= {f"policy_{role}_logps": policy.logps, f"{role}_mask": policy.mask}
        if ref:
            args[f"ref_{role}_logps"] = fake_logps(module, module.ref, rows).logps
    return args


@pytest.mark.parametrize("name, loss", [("dpo", DPOLoss(beta=0.1, clip=CLIP)), ("ipo", IPOLoss(beta=0.1, clip=CLIP))])
def test_paired_modules_feed_chosen_as_chosen_with_their_clip(name, loss):
    module, data = build(name)
    batch = first_batch(data)
    out = patched(module).compute_loss(batch)
    assert_same(out, loss(**pair_args(module, batch)))
    swapped = loss(**pair_args(module, batch, roles=("rejected", "chosen")))
    assert not torch.isclose(out.loss, swapped.loss)  # the check can tell the roles apart
    unclipped = type(loss)(beta=0.1)(**pair_args(module, batch))
    assert not torch.isclose(out.loss, unclipped.loss)  # ... and whether the clip was applied


def test_simpo_feeds_chosen_as_chosen_without_a_reference():
    module = patched(SimPOModule(model="tiny-random"))
    assert module.ref is None
    batch = first_batch(
        PreferenceDataModule(tokenizer="tiny-random", batch_size=2, max_length=64, max_prompt_length=48)
    )
    out = module.compute_loss(batch)
    assert_same(out, SimPOLoss(beta=2.0, gamma=1.0)(**pair_args(module, batch, ref=False)))
    swapped = SimPOLoss(beta=2.0, gamma=1.0)(**pair_args(module, batch, roles=("rejected", "chosen"), ref=False))
    assert not torch.isclose(out.loss, swapped.loss)


def test_kto_feeds_desirable_labels_and_the_kl_rows():
    module, data = build("kto", desirable_weight=1.3)
    batch = first_batch(data)
    out = patched(module).compute_loss(batch)
    items_policy = fake_logps(module, module.policy, batch.items)
    items_ref = fake_logps(module, module.ref, batch.items)
    kl_policy, kl_ref = fake_logps(module, module.policy, batch.kl), fake_logps(module, module.ref, batch.kl)
    z0 = CLIP(kl_policy.logps - kl_ref.logps, kl_policy.mask).sum(-1).mean().clamp(min=0)
    loss = KTOLoss(beta=0.1, desirable_weight=1.3, clip=CLIP)
    args = dict(policy_logps=items_policy.logps, ref_logps=items_ref.logps, mask=items_policy.mask, kl=z0)
    assert_same(out, loss(**args, desirable=batch.desirable))
    assert not torch.isclose(out.loss, loss(**args, desirable=~batch.desirable).loss)
    assert out.metrics["kl"].item() == pytest.approx(z0.item(), abs=1e-12)


def test_grpo_feeds_the_batch_advantages_with_their_sign():
    module, data = build("grpo", kl_beta=0.05)
    batch = first_batch(data)
    assert (batch.advantages != 0).any()
    out = patched(module).compute_loss(batch)
    policy, ref = fake_logps(module, module.policy, batch.rows), fake_logps(module, module.ref, batch.rows)
    loss = GRPOLoss(epsilon=0.2, kl_beta=0.05, clip=CLIP)
    args = dict(policy_logps=policy.logps, ref_logps=ref.logps, mask=policy.mask)
    assert_same(out, loss(**args, advantages=batch.advantages))
    assert not torch.isclose(out.loss, loss(**args, advantages=-batch.advantages).loss)
    assert out.metrics["reward"].item() == pytest.approx(batch.rewards.mean().item())
    assert out.metrics["reward_std"].item() == pytest.approx(batch.rewards.std(unbiased=False).item())


@pytest.mark.parametrize("name", ["dpo", "kto", "grpo"])
def test_shared_prompt_forward_equals_separate_rows(name):
    """share_prompt (DPO pairs, KTO item + KL row, a GRPO group run their prompt once): same loss, same grads."""
    results = []
    for share in (True, False):
        module, data = build(name, share_prompt=share)
        torch.manual_seed(0)
        with torch.no_grad():  # a policy different from the reference, identically in both runs
            for p in module.policy.parameters():
                p.add_(0.02 * torch.randn_like(p))
        out = module.compute_loss(first_batch(data))
        out.loss.backward()
        results.append((out.loss.detach(), [p.grad.clone() for p in module.policy.parameters()]))
    (loss_a, grads_a), (loss_b, grads_b) = results
    torch.testing.assert_close(loss_a, loss_b, rtol=1e-5, atol=1e-7)
    for a, b in zip(grads_a, grads_b, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


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
    trainer(3, [RefSyncCallback(every_n_steps=1), recorder], tmp_path, limit_val_batches=0).fit(module, datamodule=data)
    for t in (1, 2):
        assert torch.equal(recorder.ref[t], recorder.policy[t - 1])
        assert not torch.equal(recorder.ref[t], recorder.policy[t])


def test_kto_refuses_a_batch_without_a_mismatched_pair():
    module, data = build("kto")
    batch = first_batch(data)
    batch.index, batch.desirable = batch.index[:1], batch.desirable[:1]
    with pytest.raises(ValueError, match="at least 2 items per batch"):
        module.compute_loss(batch)


def test_reference_free_module_refuses_clip_cache_and_sync(tmp_path):
    with pytest.raises(ValueError, match="SimPOModule is reference-free, so clip does not apply"):
        SimPOModule(model="tiny-random", clip=ClipLogRatio())
    with pytest.raises(ValueError, match="SimPOModule is reference-free, so cache_ref_logps does not apply"):
        SimPOModule(model="tiny-random", cache_ref_logps=True)
    data = PreferenceDataModule(tokenizer="tiny-random", batch_size=2, max_length=64, max_prompt_length=48)
    with pytest.raises(ValueError, match="SimPOModule is reference-free, so there is no reference to sync"):
        trainer(1, [RefSyncCallback()], tmp_path).fit(SimPOModule(model="tiny-random"), datamodule=data)


def test_simpo_trains_without_a_reference(tmp_path):
    module = SimPOModule(model="tiny-random", optimizer=partial(torch.optim.AdamW, lr=1e-3))
    data = PreferenceDataModule(tokenizer="tiny-random", batch_size=2, max_length=64, max_prompt_length=48)
    before = flat(module.policy)
    trainer(2, [], tmp_path, limit_val_batches=0).fit(module, datamodule=data)
    assert not torch.equal(flat(module.policy), before)
    assert not any("ref" in name for name, _ in module.named_parameters())


def test_data_module_of_another_family_is_refused(tmp_path):
    module, _ = build("kto")
    pairs = PreferenceDataModule(tokenizer="tiny-random", batch_size=2, max_length=64, max_prompt_length=48)
    with pytest.raises(
        TypeError,
        match=r"KTOModule trains on unpaired items from UnpairedPreferenceDataModule.*"
        r"PreferenceDataModule",
    ):
        trainer(1, [], tmp_path).fit(module, datamodule=pairs)
