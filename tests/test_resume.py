"""A resumed humanline run continues exactly: policy, reference, optimizer, LR schedule, data order, sync phase."""

from functools import partial

import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from hl_lightning.callbacks import RefSyncCallback
from hl_lightning.data import PreferenceDataModule
from hl_lightning.modules import DPOModule
from hl_lightning.objectives import ClipLogRatio
from tests.helpers import LORA, flat, policy_flat, reference_flat, trainer


def module(lora: bool = False) -> DPOModule:
    torch.manual_seed(0)  # LoRA's A matrices are drawn at construction
    return DPOModule(
        model="tiny-random",
        clip=ClipLogRatio(),
        optimizer=partial(torch.optim.AdamW, lr=1e-3),
        peft=LORA if lora else None,
        lr_scheduler=partial(torch.optim.lr_scheduler.LinearLR, start_factor=0.1, total_iters=4),
    )


def data() -> PreferenceDataModule:
    return PreferenceDataModule(tokenizer="tiny-random", batch_size=2, max_length=64, max_prompt_length=48)


def fit(root, max_steps, ckpt_path=None, callbacks=(), lora=False):
    policy, sync = module(lora), RefSyncCallback(every_n_steps=2)
    t = trainer(
        max_steps,
        [sync, *callbacks],
        root,
        limit_train_batches=4,
        limit_val_batches=0,
        enable_checkpointing=bool(callbacks),
    )
    t.fit(policy, datamodule=data(), ckpt_path=ckpt_path)
    return t, policy, sync


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_resume_mid_epoch_is_bitwise_equal_to_uninterrupted(tmp_path, lora):
    """Stop after 3 of 6 steps (mid-epoch: 4 batches per epoch, k=2), resume from the step-3 checkpoint that
    ModelCheckpoint wrote during training, and compare every weight with an uninterrupted 6-step run (with
    LoRA: the base, both adapters and the optimizer state)."""
    t_straight, straight, _ = fit(tmp_path / "a", 6, lora=lora)
    every_3 = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=3, save_top_k=-1)
    fit(tmp_path / "b", 3, callbacks=[every_3], lora=lora)
    (ckpt,) = (tmp_path / "ckpt").glob("*step=3.ckpt")
    t_resumed, resumed, sync = fit(tmp_path / "c", 6, ckpt_path=ckpt, lora=lora)

    assert sync.syncs == 3  # steps 0, 2 and 4, counted across the interruption
    assert torch.equal(flat(resumed.policy), flat(straight.policy))  # with LoRA: base + both adapters
    assert torch.equal(reference_flat(resumed), reference_flat(straight))
    assert not torch.equal(reference_flat(resumed), policy_flat(resumed))
    states = [t.optimizers[0].state_dict()["state"] for t in (t_resumed, t_straight)]
    assert states[0].keys() == states[1].keys()
    for key in states[0]:
        assert torch.equal(states[0][key]["exp_avg"], states[1][key]["exp_avg"])


def test_load_from_checkpoint_rebuilds_the_module_with_its_clip(tmp_path):
    """Outside the CLI: the objective options, the clip bounds and the weights come back; a module trained on
    a model object (no spec to rebuild from) says what to pass."""
    from hl_lightning.modules import GRPOModule, KTOModule

    every = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=2, save_top_k=-1)
    _, trained, _ = fit(tmp_path / "a", 2, callbacks=[every])
    (ckpt,) = (tmp_path / "ckpt").glob("*step=2.ckpt")
    loaded = DPOModule.load_from_checkpoint(ckpt)
    assert (loaded.clip.log_eps_P, loaded.clip.log_eps_R) == (-1.5, 1.5) and loaded.objective.clip is loaded.clip
    assert loaded.objective.beta == trained.objective.beta and loaded.model_spec == "tiny-random"
    assert torch.equal(flat(loaded.policy), flat(trained.policy)) and torch.equal(flat(loaded.ref), flat(trained.ref))
    for cls, options in ((KTOModule, dict(desirable_weight=1.3)), (GRPOModule, dict(kl_beta=0.04))):
        module = cls(model="tiny-random", clip=ClipLogRatio(-0.5, 0.7), **options)
        t = trainer(0, [], tmp_path / cls.__name__)
        t.strategy.connect(module)
        t.save_checkpoint(tmp_path / f"{cls.__name__}.ckpt")
        back = cls.load_from_checkpoint(tmp_path / f"{cls.__name__}.ckpt")
        assert (back.clip.log_eps_P, back.clip.log_eps_R) == (-0.5, 0.7)
        assert {k: back.hparams[k] for k in options} == options
    from hl_lightning.models.loading import load_causal_lm

    objectless = DPOModule(model=load_causal_lm("tiny-random"))
    t = trainer(0, [], tmp_path / "object")
    t.strategy.connect(objectless)
    t.save_checkpoint(tmp_path / "object.ckpt")
    with pytest.raises(ValueError, match=r"trained on a model object.*load_from_checkpoint\(path, model=\.\.\.\)"):
        DPOModule.load_from_checkpoint(tmp_path / "object.ckpt")
    assert DPOModule.load_from_checkpoint(tmp_path / "object.ckpt", model="tiny-random").model_spec == "tiny-random"
