"""Options refused at construction or setup, each with a message naming the option and a valid value."""

import pytest
import torch

from hl_lightning.data import PreferenceDataModule
from hl_lightning.models.loading import tiny_random_llama
from hl_lightning.modules import DPOModule, GRPOModule
from hl_lightning.modules.checks import check_dtype
from tests.helpers import trainer
from tests.online.helpers import online_data


def test_export_dir_with_unrelated_files_is_refused_an_earlier_export_is_replaced(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "thesis.tex").write_text("...")
    with pytest.raises(ValueError, match=r"export_dir='.*notes' exists and is not an earlier model export"):
        DPOModule(model="tiny-random", export_dir=str(tmp_path / "notes"))
    first = DPOModule(model="tiny-random", export_dir=str(tmp_path / "model"))
    first.export(tmp_path / "model")
    assert DPOModule(model="tiny-random", export_dir=str(tmp_path / "model")).export_dir == str(tmp_path / "model")
    assert DPOModule(model="tiny-random", export_dir=str(tmp_path / "new")).export_dir == str(tmp_path / "new")


def test_a_tokenizer_larger_than_the_model_vocabulary_is_refused_at_setup(tmp_path):
    module = DPOModule(model=tiny_random_llama(vocab_size=1000))
    data = PreferenceDataModule(tokenizer="tiny-random", batch_size=2, max_length=64, max_prompt_length=48)
    with pytest.raises(
        ValueError,
        match=r"tokenizer .*49152 tokens\) does not fit the model \(LlamaForCausalLM, "
        r"embedding of 1000\)",
    ):
        trainer(1, [], tmp_path).fit(module, datamodule=data)


def test_the_data_tokenizer_follows_the_model_by_default(tmp_path):
    data = PreferenceDataModule(batch_size=2, max_length=64, max_prompt_length=48)  # no tokenizer given
    trainer(1, [], tmp_path, limit_val_batches=0).fit(DPOModule(model="tiny-random"), datamodule=data)
    assert len(data.tokenizer) == 49152 and data.hparams.tokenizer is None


def test_online_micro_batches_need_a_prompt_each(tmp_path):
    message = r"prompts_per_step=2\) cannot fill the 3 micro-batches.*prompts_per_step >= 3"
    with pytest.raises(ValueError, match=message):
        trainer(1, [], tmp_path, accumulate_grad_batches=3).fit(
            GRPOModule(model="tiny-random"), datamodule=online_data(prompts_per_step=2)
        )


def test_a_dtype_the_device_cannot_run_is_named(monkeypatch):
    model = tiny_random_llama(vocab_size=100)

    def unsupported(a, b):
        raise RuntimeError("addmm not implemented for Half")

    monkeypatch.setattr(torch.Tensor, "__matmul__", unsupported)
    with pytest.raises(ValueError, match=r"dtype='float16' cannot run on cpu .*not implemented.*use dtype=float32"):
        check_dtype(model, "float16")
