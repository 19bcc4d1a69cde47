"""The non-finite guard: a NaN / inf loss or gradient skips that optimizer step (no update, no sync, LR on
schedule), is counted and logged, and too many in a row stop the run with a clear error."""

import logging
from functools import partial

import pytest
import torch

from hl_lightning.callbacks import RefSyncCallback
from hl_lightning.data import PreferenceDataModule
from hl_lightning.modules import DPOModule
from tests.helpers import WeightRecorder, trainer


def build(**kwargs):
    module = DPOModule(
        model="tiny-random",
        optimizer=partial(torch.optim.AdamW, lr=1e-3),
        lr_scheduler=partial(torch.optim.lr_scheduler.LinearLR, start_factor=0.1, total_iters=4),
        **kwargs,
    )
    data = PreferenceDataModule(tokenizer="tiny-random", batch_size=2, max_length=64, max_prompt_length=48)
    return module, data


def poison_loss(module, steps, value=float("nan")):
    """Make the loss of the given optimizer steps non-finite."""
    compute = module.compute_loss

    def poisoned(batch):
        out = compute(batch)
        if module.trainer.global_step in steps:
            return out._replace(loss=out.loss * value)
        return out

    module.compute_loss = poisoned


def poison_one_gradient(module, steps, value=float("inf")):
    """Make one parameter's gradient non-finite at the given optimizer steps (the loss stays finite)."""
    param = module.policy.get_decoder().layers[0].mlp.down_proj.weight
    param.register_hook(lambda g: g * value if module.trainer.global_step in steps else g)


@pytest.mark.parametrize("poison", [poison_loss, poison_one_gradient], ids=["nan loss", "inf gradient"])
def test_a_non_finite_step_changes_no_weight_and_syncs_nothing(poison, tmp_path, caplog):
    module, data = build()
    poison(module, {1})
    rec = WeightRecorder()
    fitted = trainer(4, [RefSyncCallback(every_n_steps=1), rec], tmp_path, limit_val_batches=0)
    with caplog.at_level(logging.WARNING):
        fitted.fit(module, datamodule=data)
    # step 0: sync (ref = θ0), update -> θ1; step 1: skipped (no sync, no update); step 2: ref = θ1 again
    assert torch.equal(rec.policy[2], rec.policy[1]) and torch.equal(rec.ref[2], rec.ref[1])
    assert torch.equal(rec.ref[1], rec.policy[0]) and not torch.equal(rec.policy[1], rec.policy[0])
    assert torch.equal(rec.ref[3], rec.policy[2]) and not torch.equal(rec.policy[3], rec.policy[2])  # goes on
    assert all(torch.isfinite(w).all() for w in rec.policy + rec.ref)
    assert torch.isfinite(torch.cat([p.detach().flatten() for p in module.policy.parameters()])).all()
    optimizer = fitted.optimizers[0]
    assert {int(optimizer.state[p]["step"]) for p in module.policy.parameters()} == {3}  # 4 steps, 1 skipped
    assert fitted.lr_scheduler_configs[0].scheduler.last_epoch == 4  # the LR follows global_step
    assert fitted.global_step == 4 and module.skipped_steps == 1
    assert fitted.callback_metrics["train/skipped_steps"] == 1
    reason = "non-finite loss" if poison is poison_loss else "non-finite gradient norm"
    assert f"Skipped optimizer step 1 ({reason}; batch example indices" in caplog.text


def test_too_many_skips_in_a_row_stop_the_run(tmp_path):
    module, data = build(max_consecutive_skips=3)
    poison_loss(module, set(range(100)), value=float("inf"))
    message = r"3 optimizer steps in a row were skipped \(last: non-finite loss at step 2"
    with pytest.raises(RuntimeError, match=message):
        trainer(10, [], tmp_path, limit_val_batches=0).fit(module, datamodule=data)


def test_max_consecutive_skips_is_validated():
    with pytest.raises(ValueError, match="max_consecutive_skips=0 must be >= 1"):
        DPOModule(model="tiny-random", max_consecutive_skips=0)
