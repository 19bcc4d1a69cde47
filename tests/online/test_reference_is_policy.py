"""While the reference holds the policy's own weights, its log-probs are the policy's: the reference forward is
skipped (an online round's first step after the reset, TRL's "old log-probs = policy's" at one step a rollout)."""

import pytest
import torch
from lightning.pytorch import Callback

from hl_lightning.callbacks import RefSyncCallback
from hl_lightning.modules import GRPOModule
from hl_lightning.modules.reference import runs_dropout
from tests.conftest import make_pair_batches
from tests.helpers import loader, tiny_dpo, trainer
from tests.online.helpers import adamw, online_data


class RefForwards(Callback):
    """Counts the reference's forwards in each training batch (a forward hook on its decoder)."""

    def __init__(self) -> None:
        self.per_batch: list[int] = []
        self._count = 0

    def on_fit_start(self, trainer, pl_module):
        pl_module.ref.get_decoder().register_forward_hook(self._hook)

    def _hook(self, *args) -> None:
        self._count += 1

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.per_batch.append(self._count)
        self._count = 0


def _moved_dpo():
    """A tiny DPO module whose policy differs from its reference (so equal log-probs mean something)."""
    module = tiny_dpo().train()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in module.policy.parameters():
            param.add_(torch.randn(param.shape, generator=gen) * 0.05)
    return module


def test_after_a_sync_the_reference_forward_is_skipped_and_its_logps_are_the_policys():
    module, counts = _moved_dpo(), []
    module.ref.get_decoder().register_forward_hook(lambda *a: counts.append(1))
    rows = make_pair_batches(1)[0].rows()
    policy, ref = module.dual_logps(rows)
    assert len(counts) == 1 and not torch.allclose(policy.logps, ref.logps, atol=1e-3)
    module.sync_reference()
    policy, ref = module.dual_logps(rows)
    assert len(counts) == 1, "the reference ran although it holds the policy's weights"
    assert policy.logps.requires_grad and not ref.logps.requires_grad
    with torch.no_grad():
        full = module.forward_logps(module.ref, rows)
    torch.testing.assert_close(ref.logps, full.logps, rtol=1e-5, atol=1e-6)
    assert torch.equal(ref.mask, full.mask)


def test_with_dropout_active_the_reference_runs_after_a_sync():
    """The policy's training forward draws dropout, the reference's does not: no shortcut then."""
    module, counts = _moved_dpo(), []
    module.ref.get_decoder().register_forward_hook(lambda *a: counts.append(1))
    module.policy.config.attention_dropout = 0.1
    module.sync_reference()
    module.dual_logps(make_pair_batches(1)[0].rows())
    assert len(counts) == 1


def test_runs_dropout_reads_modules_config_and_mode():
    assert runs_dropout(torch.nn.Sequential(torch.nn.Dropout(0.1)).train())
    assert not runs_dropout(torch.nn.Sequential(torch.nn.Dropout(0.1)).eval())
    assert not runs_dropout(torch.nn.Sequential(torch.nn.Dropout(0.0), torch.nn.Linear(2, 2)).train())
    module = tiny_dpo().train()
    assert not runs_dropout(module.policy)
    module.policy.config.resid_pdrop = 0.2
    assert runs_dropout(module.policy)


def test_offline_k1_sync_never_skips_the_reference(tmp_path):
    """RefSyncCallback syncs before optimizer.step(), which then moves the policy: every step's reference is
    the previous policy, so every step runs the reference."""
    forwards = RefForwards()
    trainer(3, [RefSyncCallback(every_n_steps=1), forwards], tmp_path).fit(tiny_dpo(), loader(make_pair_batches(3)))
    assert forwards.per_batch == [1, 1, 1]


@pytest.mark.parametrize(("every", "accumulate", "expected"), [(2, 1, [0, 1, 0, 1]), (1, 2, [0, 1, 0, 1])])
def test_online_reset_skips_the_reference_only_until_the_policy_moves(
    tmp_path, lively_model, every, accumulate, expected
):
    """N = 2: each round's first step runs no reference (it was just reset to the policy), the second does.
    N = 1 with 2 accumulated batches: the second batch of a step runs it (forgotten at every batch end)."""
    forwards = RefForwards()
    module = GRPOModule(model=lively_model, optimizer=adamw())
    trainer(4 // accumulate, [forwards], tmp_path, accumulate_grad_batches=accumulate).fit(
        module, datamodule=online_data(sample_every_n_steps=every)
    )
    assert forwards.per_batch == expected
