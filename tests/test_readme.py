"""The README's Python snippet runs as written (modules + callback in a plain lightning.Trainer)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_snippet_runs(tmp_path, monkeypatch):
    section = README.read_text().split("## Use it from Python", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)
    assert namespace["trainer"].global_step == 2
    assert (tmp_path / "outputs" / "my-policy" / "model.safetensors").exists()
    assert (tmp_path / "outputs" / "my-policy" / "tokenizer_config.json").exists()


def test_readme_own_data_module_runs(tmp_path, monkeypatch):
    section = README.read_text().split("## Bring your own data module", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)
    assert namespace["own"].global_step == 2
    batch = namespace["collate"](list(enumerate(namespace["PAIRS"])))
    assert batch.rows().shared == [[0, 2], [1, 3]] and batch.chosen.keys.tolist() == [0, 2]


def test_a_batch_that_breaks_the_contract_is_named(tmp_path):
    import lightning.pytorch as pl
    import pytest
    import torch
    from torch.utils.data import DataLoader

    from hl_lightning.data import BatchError
    from hl_lightning.modules import DPOModule

    class Dicts(pl.LightningDataModule):
        def train_dataloader(self):
            return DataLoader([{"input_ids": torch.ones(2, 3, dtype=torch.long)}], batch_size=None)

    fit = pl.Trainer(
        accelerator="cpu", max_steps=1, logger=False, enable_checkpointing=False, default_root_dir=tmp_path
    )
    with pytest.raises(
        BatchError,
        match=r"DPOModule trains on PairedBatch batches.*gave \['input_ids'\].*"
        r"docs/CONTRACTS.md",
    ):
        fit.fit(DPOModule(model="tiny-random"), datamodule=Dicts())
