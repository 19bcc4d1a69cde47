"""LoRA (``peft``) on every objective: the reference runs on the policy's own base, exactly.

Exactness: with LoRA, the reference is the base with the adapter disabled (no sync) or the frozen ``"reference"``
adapter (sync). Both must equal an explicit full-model reference: a copy of the base with the reference adapter
merged into it (``merge_and_unload``), or with none. The tests give the trainable and the reference adapters
different random weights (B != 0), so an adapter switch that did not happen, or happened the wrong way round,
changes the log-ratios, hence the loss and its gradients.
"""

import copy
import json
from functools import partial

import lightning.pytorch as pl
import pytest
import torch
from peft import AutoPeftModelForCausalLM, LoraConfig, PeftModel
from transformers import AutoModelForCausalLM

from hl_lightning.callbacks import RefSyncCallback
from hl_lightning.models.loading import load_causal_lm
from hl_lightning.modules import DPOModule
from hl_lightning.modules.lora import REFERENCE, TRAINABLE
from hl_lightning.modules.reference import FrozenCopy
from hl_lightning.objectives import ClipLogRatio
from tests.helpers import trainer
from tests.modules.test_objective_modules import CASES, first_batch

LORA = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0)


def build(name: str, sync: bool, **kwargs):
    module_cls, data_cls, batch_size = CASES[name]
    module = module_cls(
        model="tiny-random",
        clip=ClipLogRatio(-0.3, 0.3),
        peft=LORA,
        optimizer=partial(torch.optim.AdamW, lr=1e-2),
        **kwargs,
    )
    if sync:
        module.enable_reference_sync()
    data = data_cls(tokenizer="tiny-random", batch_size=batch_size, max_length=64, max_prompt_length=48)
    return module, data


def adapter(module, name: str) -> torch.Tensor:
    """The LoRA weights of adapter ``name`` as one vector."""
    return torch.cat([p.detach().flatten().clone() for n, p in module.policy.named_parameters() if f".{name}." in n])


def randomise(module, name: str, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in module.policy.named_parameters():
            if f".{name}." in n:
                p.copy_(0.3 * torch.randn(p.shape, generator=g))


def explicit_reference(module) -> torch.nn.Module:
    """A full model: the base with the reference adapter merged (sync) or with no adapter (no sync)."""
    copy_ = copy.deepcopy(module.policy)
    if REFERENCE in copy_.peft_config:
        copy_.set_adapter(REFERENCE)
        copy_.delete_adapter(TRAINABLE)
        return copy_.merge_and_unload().eval()
    return copy_.unload().eval()


def loss_and_grads(module, batch):
    module.policy.zero_grad()
    out = module.compute_loss(batch)
    out.loss.backward()
    return out.loss.detach(), {n: p.grad.clone() for n, p in module.policy.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("sync", [False, True], ids=["base-reference", "reference-adapter"])
@pytest.mark.parametrize("name", ["dpo", "kto", "grpo"])
def test_lora_loss_and_grads_equal_an_explicit_full_reference(name, sync):
    module, data = build(name, sync)
    randomise(module, TRAINABLE, seed=1)
    if sync:
        randomise(module, REFERENCE, seed=2)
    batch = first_batch(data)
    loss, grads = loss_and_grads(module, batch)
    module.reference = FrozenCopy(explicit_reference(module))  # the same module, a full-model reference
    expected, expected_grads = loss_and_grads(module, batch)

    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=0)
    assert grads.keys() == expected_grads.keys() and len(grads) == 2 * 2 * 2  # A and B of q, v in 2 layers
    assert all(f".{TRAINABLE}." in n for n in grads)
    for n in grads:
        torch.testing.assert_close(grads[n], expected_grads[n], rtol=1e-5, atol=1e-8)
    module.reference = FrozenCopy(copy.deepcopy(module.policy).merge_and_unload())  # the trainable adapter as ref
    assert not torch.isclose(loss, module.compute_loss(batch).loss.detach(), rtol=1e-3)  # a switch that failed


def test_reference_forward_leaves_the_trainable_adapter_active_and_trainable():
    module, data = build("dpo", sync=True)
    randomise(module, TRAINABLE, seed=1)
    module.ref_logps(first_batch(data).rows())
    assert module.policy.active_adapter == TRAINABLE and module.policy.training
    trainable = {n: p.requires_grad for n, p in module.policy.named_parameters()}
    assert all(trainable[n] for n in trainable if f".{TRAINABLE}." in n)
    assert not any(trainable[n] for n in trainable if f".{TRAINABLE}." not in n)  # base and reference frozen


def test_sync_copies_the_trainable_adapter_by_value():
    module, _ = build("dpo", sync=True)
    randomise(module, TRAINABLE, seed=1)
    assert not torch.equal(adapter(module, REFERENCE), adapter(module, TRAINABLE))
    module.sync_reference()
    assert torch.equal(adapter(module, REFERENCE), adapter(module, TRAINABLE))
    before = adapter(module, REFERENCE)
    randomise(module, TRAINABLE, seed=3)  # the policy moves on; the reference keeps the synced values
    assert torch.equal(adapter(module, REFERENCE), before)


def test_a_fresh_reference_adapter_equals_the_disabled_adapter_reference():
    """Enabling sync before training changes no reference log-prob: a new adapter adds exactly zero."""
    module, data = build("dpo", sync=False)
    rows = first_batch(data).rows()
    before = module.ref_logps(rows).logps
    module.enable_reference_sync()
    assert torch.equal(module.ref_logps(rows).logps, before)


class AdapterRecorder(pl.Callback):
    """Both adapters at the start of every optimizer step."""

    def __init__(self) -> None:
        self.policy, self.ref = [], []

    def on_train_batch_start(self, trainer_, module, batch, batch_idx) -> None:
        self.policy.append(adapter(module, TRAINABLE))
        self.ref.append(adapter(module, REFERENCE))


def test_k3_phase_with_lora(tmp_path):
    """k=3 with LoRA: the reference adapter at step t >= 1 holds the trainable adapter of step 3 * floor((t-1)/3)."""
    module, data = build("dpo", sync=False)
    recorder = AdapterRecorder()
    trainer(8, [RefSyncCallback(every_n_steps=3), recorder], tmp_path, limit_val_batches=0).fit(module, datamodule=data)
    policy, ref = recorder.policy, recorder.ref
    for t, source in enumerate([0, 0, 0, 0, 3, 3, 3, 6]):
        assert torch.equal(ref[t], policy[source]), f"step {t} should hold the adapter of step {source}"
    assert not torch.equal(ref[3], policy[3])
    base = load_causal_lm("tiny-random").state_dict()
    merged_free = {
        n.replace("base_model.model.", "").replace(".base_layer", ""): p
        for n, p in module.policy.state_dict().items()
        if "lora_" not in n
    }
    for n, p in base.items():  # the base never moves
        assert torch.equal(merged_free[n], p), n


def test_only_the_adapter_is_optimised(tmp_path):
    module, data = build("kto", sync=True)
    trainer(1, [RefSyncCallback()], tmp_path, limit_val_batches=0).fit(module, datamodule=data)
    (group,) = module.trainer.optimizers[0].param_groups
    names = {id(p): n for n, p in module.policy.named_parameters()}
    assert {names[id(p)].split(".lora_")[1].split(".")[1] for p in group["params"]} == {TRAINABLE}
    assert len(group["params"]) == 8


def test_adapter_export_round_trips_with_peft(tmp_path):
    module, data = build("dpo", sync=True, export_dir=str(tmp_path / "adapter"))
    randomise(module, TRAINABLE, seed=1)
    module.export(tmp_path / "adapter")
    assert not (tmp_path / "adapter" / REFERENCE).exists()  # only the trainable adapter
    reloaded = PeftModel.from_pretrained(load_causal_lm("tiny-random"), tmp_path / "adapter").eval()
    ids = first_batch(data).rows().input_ids
    module.policy.eval()
    torch.testing.assert_close(reloaded(ids).logits, module.policy(ids).logits, rtol=1e-5, atol=1e-6)


def _logits(model, ids) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(ids).logits


def test_adapter_export_reloads_with_auto_peft_and_its_base_beside_it(tmp_path, monkeypatch):
    """tiny-random is built from a config, so the export saves the base beside the adapter and names it."""
    module, data = build("dpo", sync=True)
    randomise(module, TRAINABLE, seed=1)
    module.export(tmp_path / "adapter")
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str((tmp_path / "adapter" / "base").resolve())
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # the recorded base is absolute: any working directory works
    reloaded = AutoPeftModelForCausalLM.from_pretrained(tmp_path / "adapter")
    ids = first_batch(data).rows().input_ids
    torch.testing.assert_close(_logits(reloaded, ids), _logits(module.policy, ids), rtol=1e-5, atol=1e-6)
    base = AutoModelForCausalLM.from_pretrained(tmp_path / "adapter" / "base")
    assert not any("lora" in n for n, _ in base.named_parameters())
    with module.policy.disable_adapter():
        torch.testing.assert_close(_logits(base, ids), _logits(module.policy, ids), rtol=0, atol=0)


def test_adapter_of_a_local_model_directory_names_that_directory(tmp_path, monkeypatch, tokenizer):
    load_causal_lm("tiny-random").save_pretrained(tmp_path / "models" / "tiny")
    tokenizer.save_pretrained(tmp_path / "models" / "tiny")
    monkeypatch.chdir(tmp_path)
    module = DPOModule(model="models/tiny", peft=LORA)  # a relative path, recorded absolute
    randomise(module, TRAINABLE, seed=2)
    module.export("adapter")
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(tmp_path / "models" / "tiny")
    assert not (tmp_path / "adapter" / "base").exists()  # nothing copied: the base is the spec's directory
    monkeypatch.chdir(tmp_path / "models")
    reloaded = AutoPeftModelForCausalLM.from_pretrained(tmp_path / "adapter")
    ids = torch.arange(3, 19).reshape(2, 8)
    torch.testing.assert_close(_logits(reloaded, ids), _logits(module.policy, ids), rtol=1e-5, atol=1e-6)


def test_merged_export_round_trips_with_plain_transformers(tmp_path):
    module, data = build("dpo", sync=True, merge=True)
    randomise(module, TRAINABLE, seed=1)
    module.export(tmp_path / "merged")
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    assert not any("lora" in n for n, _ in reloaded.named_parameters())
    ids = first_batch(data).rows().input_ids
    module.policy.eval()
    torch.testing.assert_close(reloaded(ids).logits, module.policy(ids).logits, rtol=1e-5, atol=1e-5)
    assert REFERENCE in module.policy.peft_config  # exporting left the module as it was


def test_load_from_checkpoint_rebuilds_lora_with_its_reference_adapter(tmp_path):
    module, data = build("dpo", sync=False)
    t = trainer(2, [RefSyncCallback()], tmp_path, limit_val_batches=0)
    t.fit(module, datamodule=data)
    t.save_checkpoint(tmp_path / "lora.ckpt")
    reloaded = DPOModule.load_from_checkpoint(tmp_path / "lora.ckpt")
    assert reloaded.hparams.peft == {"r": 4, "target_modules": ["q_proj", "v_proj"]}  # the non-defaults
    assert torch.equal(adapter(reloaded, TRAINABLE), adapter(module, TRAINABLE))
    assert torch.equal(adapter(reloaded, REFERENCE), adapter(module, REFERENCE))


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (LoraConfig(r=0, target_modules=["q_proj"]), "rank r must be an integer >= 1"),
        (LoraConfig(r=4, target_modules=["attn_qkv"]), "target_modules=['attn_qkv'] matches no layer of the model"),
    ],
)
def test_bad_lora_options_are_refused_at_construction(config, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")) as err:
        DPOModule(model="tiny-random", peft=config)
    assert "q_proj" in str(err.value) or "r:" in str(err.value)


def test_merge_without_peft_is_refused():
    with pytest.raises(ValueError, match="merge=true merges a LoRA adapter at export, but peft is not set"):
        DPOModule(model="tiny-random", merge=True)


def test_lora_with_cached_reference_logps_and_sync_is_refused(tmp_path):
    module, data = build("dpo", sync=False, cache_ref_logps=True)
    with pytest.raises(ValueError, match="RefSyncCallback cannot be used with cache_ref_logps=true"):
        trainer(1, [RefSyncCallback()], tmp_path, limit_val_batches=0).fit(module, datamodule=data)


def test_gradient_checkpointing_with_lora_gives_the_same_gradients():
    results = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        module, data = build("dpo", sync=True, gradient_checkpointing=checkpointing)
        randomise(module, TRAINABLE, seed=1)
        results.append(loss_and_grads(module, first_batch(data)))
    (loss_a, grads_a), (loss_b, grads_b) = results
    torch.testing.assert_close(loss_a, loss_b, rtol=1e-5, atol=0)
    assert grads_a.keys() == grads_b.keys() and len(grads_a) == 8
    for n in grads_a:
        torch.testing.assert_close(grads_a[n], grads_b[n], rtol=1e-5, atol=1e-8)
