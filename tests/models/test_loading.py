"""Model specs: the tiny random model, exports that reload with plain transformers, clear errors."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from hl_lightning.models.loading import ModelLoadError, load_causal_lm, torch_dtype
from hl_lightning.modules import DPOModule


def test_tiny_random_is_seeded_and_reference_is_a_real_copy():
    """Two builds are identical; the module's reference equals the policy but shares no storage."""
    a, b = load_causal_lm("tiny-random"), load_causal_lm("tiny-random")
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    module = DPOModule(model="tiny-random")
    for p, r in zip(module.policy.parameters(), module.ref.parameters(), strict=True):
        assert torch.equal(p, r) and p.data_ptr() != r.data_ptr() and not r.requires_grad
    module.train()
    assert module.policy.training and not module.ref.training


def test_export_reloads_with_plain_transformers(tmp_path):
    module = DPOModule(model="tiny-random")
    module.export(tmp_path / "out")
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    ids = torch.tensor([[5, 6, 7, 8]])
    torch.testing.assert_close(reloaded(ids).logits, module.policy(ids).logits, rtol=0, atol=0)
    assert (tmp_path / "out" / "tokenizer_config.json").exists()


def test_unreachable_hub_id_says_so(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match=r"(?s)Hub could not be reached.*save_pretrained"):
        load_causal_lm("no-such-org/no-such-model")


def test_directory_without_config_and_bad_dtype(tmp_path):
    with pytest.raises(ModelLoadError, match=r"no config\.json"):
        load_causal_lm(str(tmp_path))
    with pytest.raises(ValueError, match="dtype='fp8' is not supported"):
        torch_dtype("fp8")


def test_callbacks_install_inside_hl_lightning():
    """The repository's callbacks/ folder is the package hl_lightning.callbacks (no top-level `callbacks`)."""
    import hl_lightning.callbacks

    assert "RefSyncCallback" in dir(hl_lightning.callbacks)
    repo = __import__("pathlib").Path(__file__).resolve().parents[2]
    assert __import__("pathlib").Path(hl_lightning.callbacks.__file__).parent == repo / "callbacks"


@pytest.mark.parametrize(
    "spec, message",
    [
        ("tiny-randm", r"Unknown model spec 'tiny-randm': did you mean 'tiny-random'\?"),
        ("smollm", r"did you mean 'smollm2'\?"),
        ("./runs/my-model", r"Model spec './runs/my-model': no such directory"),
        ("~/nowhere/model", r"no such directory"),
        ("outputs/run/model", r"no such directory"),
    ],
)
def test_typos_and_missing_directories_are_named_not_blamed_on_the_hub(spec, message):
    with pytest.raises(ModelLoadError, match=message) as err:
        load_causal_lm(spec)
    assert "could not be reached" not in str(err.value) and "internet" not in str(err.value)
