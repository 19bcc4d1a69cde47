"""Online runs on the tiny model: when rollouts happen, which weights they use, what the reference holds."""

import copy

import pytest
import torch
from lightning.pytorch import Callback

from hl_lightning.callbacks import RefSyncCallback
from hl_lightning.models.generation import generate
from hl_lightning.models.loading import load_causal_lm
from hl_lightning.modules import DPOModule, GRPOModule, KTOModule
from hl_lightning.online.builders import BestWorstItems
from hl_lightning.online.rounds import rollout_seed
from hl_lightning.online.stream import PromptStream
from hl_lightning.rewards import Reward, RewardError
from tests.helpers import WeightRecorder, trainer
from tests.online.helpers import GenerateSpy, adamw, online_data


class StepSnapshots(Callback):
    """The policy's weights after each optimizer step (keyed by ``global_step``) and every training batch."""

    def __init__(self) -> None:
        self.weights: dict[int, dict] = {}
        self.batches: list[dict] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.batches.append(batch)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.weights[trainer.global_step] = copy.deepcopy(pl_module.policy.state_dict())


@pytest.fixture
def spy(monkeypatch):
    spy = GenerateSpy()
    monkeypatch.setattr("hl_lightning.online.rollout.generate", spy)
    return spy


def _completions(batch):
    rows = batch.rows
    return [row[mask].tolist() for row, mask in zip(rows.input_ids, rows.completion_mask, strict=True)]


def test_n2_samples_twice_in_4_steps_with_the_weights_after_step_2(tmp_path, spy, lively_model, tokenizer):
    snaps = StepSnapshots()
    data = online_data(sample_every_n_steps=2)
    trainer(4, [snaps], tmp_path).fit(GRPOModule(model=lively_model, optimizer=adamw()), datamodule=data)
    assert len(spy.calls) == 2
    stream = PromptStream(len(data.train_prompts), seed=0)
    stream.take(4)  # round 1: N = 2 steps x 2 prompts
    prompts = [data.train_prompts[i].messages for i in stream.take(4)]
    assert spy.calls[1]["prompts"] == prompts
    direct = load_causal_lm("tiny-random")
    options = dict(max_new_tokens=5, temperature=1.0, top_p=0.95, num_return_sequences=3, seed=rollout_seed(0, 0, 1))
    direct.load_state_dict(snaps.weights[2])
    expected = generate(direct, tokenizer, prompts, **options).completion_ids
    assert spy.calls[1]["out"].completion_ids == expected
    direct.load_state_dict(snaps.weights[1])  # the check is not vacuous: one step earlier samples differently
    assert generate(direct, tokenizer, prompts, **options).completion_ids != expected
    # step 2 trains on groups 0 and 2 of the round (dealt round-robin), the policy's own token ids
    assert _completions(snaps.batches[2]) == expected[0:3] + expected[6:9]
    assert _completions(snaps.batches[3]) == expected[3:6] + expected[9:12]


def test_a_step_is_accumulate_batches(tmp_path, spy, lively_model):
    snaps = StepSnapshots()
    data = online_data(sample_every_n_steps=1)
    trainer(2, [snaps], tmp_path, accumulate_grad_batches=2).fit(
        GRPOModule(model=lively_model, optimizer=adamw()), datamodule=data
    )
    assert len(spy.calls) == 2 and len(snaps.batches) == 4  # one rollout per optimizer step of 2 batches
    assert [len(b.group.unique()) for b in snaps.batches] == [1, 1, 1, 1]  # 2 prompts per step, 1 per batch
    assert [b.log["rollout/rounds"] for b in snaps.batches] == [1, 1, 2, 2]


def test_reference_reset_to_the_policy_at_each_round_start(tmp_path, lively_model):
    rec = WeightRecorder()
    trainer(4, [rec], tmp_path).fit(
        GRPOModule(model=lively_model, optimizer=adamw()), datamodule=online_data(sample_every_n_steps=2)
    )
    for t in range(4):
        assert torch.equal(rec.ref[t], rec.policy[2 * (t // 2)]), f"step {t}: ref = policy at the round start"
    assert not torch.equal(rec.ref[1], rec.policy[1]) and not torch.equal(rec.ref[3], rec.policy[3])


def test_without_reset_ref_sync_alone_governs_the_reference(tmp_path, lively_model):
    """reset false + RefSyncCallback(k=3), N = 2: syncs at steps 0 and 3 only, none at the round start (step 2)."""
    rec = WeightRecorder()
    data = online_data(sample_every_n_steps=2, reset_reference_each_round=False)
    trainer(5, [RefSyncCallback(every_n_steps=3), rec], tmp_path).fit(
        GRPOModule(model=lively_model, optimizer=adamw()), datamodule=data
    )
    for t, source in enumerate([0, 0, 0, 0, 3]):
        assert torch.equal(rec.ref[t], rec.policy[source]), f"step {t} should hold θ_{source}"
    assert not torch.equal(rec.ref[2], rec.policy[2])


@pytest.mark.parametrize("module", [DPOModule, KTOModule])
def test_dpo_and_kto_fit_and_log_rollout_metrics(module, tmp_path, lively_model):
    fitted = trainer(2, [], tmp_path)
    data = online_data()
    fitted.fit(module(model=lively_model, optimizer=adamw()), datamodule=data)
    assert isinstance(data.builder, module.spec.builder)  # the module's objective picks the builder
    metrics = fitted.callback_metrics
    for key in [
        "loss",
        "reward/mean",
        "reward/std",
        "completions/mean_length",
        "completions/clipped_ratio",
        "rollout/tokens_per_s",
        "rollout/time_frac",
        "rollout/dropped_prompts",
        "rollout/rounds",
    ]:
        assert key in metrics, key
    assert "accuracy" not in metrics  # the hash reward is not verifiable
    assert metrics["rollout/rounds"] == 2 and 0 < metrics["rollout/time_frac"] <= 1


def test_builder_must_make_the_module_s_batches(tmp_path):
    message = r"DPOModule trains on preference pairs \(PairedBatch\).*BestWorstItems.*Unpaired"
    with pytest.raises(TypeError, match=message):
        trainer(1, [], tmp_path).fit(DPOModule(model="tiny-random"), datamodule=online_data(builder=BestWorstItems()))


def test_constant_reward_runs_to_the_last_step_without_moving_the_weights(tmp_path, lively_model):
    """Online DPO whose reward never separates two completions: every round starves, every step is skipped."""

    class Constant(Reward):
        name = "constant"

        def __call__(self, prompts, completions, **fields):
            return [1.0] * len(completions)

    rec = WeightRecorder()
    fitted = trainer(3, [RefSyncCallback(every_n_steps=1), rec], tmp_path)
    module = DPOModule(model=lively_model, optimizer=adamw())
    before = copy.deepcopy(module.policy.state_dict())
    fitted.fit(module, datamodule=online_data(reward=Constant(), max_rollouts_per_round=2))
    assert fitted.global_step == 3 and module.skipped_steps == 3
    assert fitted.callback_metrics["rollout/starved_rounds"] == 3
    assert fitted.callback_metrics["train/skipped_steps"] == 3
    assert all(torch.equal(v, before[k]) for k, v in module.policy.state_dict().items())
    assert all(torch.equal(rec.ref[t], rec.policy[0]) for t in range(3))


def test_max_steps_is_required(tmp_path):
    with pytest.raises(ValueError, match="max_steps"):
        trainer(-1, [], tmp_path, max_epochs=1).fit(GRPOModule(model="tiny-random"), datamodule=online_data())


@pytest.mark.parametrize(
    "failure, message",
    [("raise", r"Reward 'broken' \(Failing\) failed.*KeyError"), ("nan", r"Reward 'broken' returned nan at index 0")],
)
def test_reward_errors_name_the_reward(failure, message, tmp_path):
    class Failing(Reward):
        name = "broken"

        def __call__(self, prompts, completions, **fields):
            return fields["missing"] if failure == "raise" else [float("nan")] * len(completions)

    with pytest.raises(RewardError, match=message):
        trainer(1, [], tmp_path).fit(GRPOModule(model="tiny-random"), datamodule=online_data(reward=Failing()))
