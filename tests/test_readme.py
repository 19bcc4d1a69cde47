"""README.md: its Python example runs as written (modules + callback in a plain lightning.Trainer), it stays short
and opens with the two commands, its config table names real files, and a batch that breaks the contract is named.

The other pages' examples run in tests/test_docs.py (the own data module of the former README section is
docs/guides/own-data.md)."""

import re
from pathlib import Path

from tests.test_docs import python_blocks, run_page

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"


def test_readme_snippet_runs(tmp_path, monkeypatch):
    assert "## Use it from Python" in README.read_text()  # tests/test_packaging.py runs the block of this section
    namespace = run_page(README, tmp_path, monkeypatch)
    assert namespace["trainer"].global_step == 2
    assert (tmp_path / "outputs" / "my-policy" / "model.safetensors").exists()
    assert (tmp_path / "outputs" / "my-policy" / "tokenizer_config.json").exists()


def test_readme_is_short_and_opens_with_make_demo_and_make_test():
    text = README.read_text()
    assert len(text.splitlines()) < 200
    first_block = re.search(r"```bash\n(.*?)```", text, re.S)[1]
    assert [line.split()[:2] for line in first_block.splitlines()] == [["make", "demo"], ["make", "test"]]
    assert text.index(first_block) < text.index("##")  # before any section
    assert len(python_blocks(README)[0].strip().splitlines()) <= 12


def test_the_readme_config_table_names_shipped_configs():
    table = re.search(r"## The shipped configs\n(.*?)\n## ", README.read_text(), re.S)[1]
    named = re.findall(r"`(configs/[^`]+\.yaml)`", table)
    assert len(named) >= 15
    for pattern in named:
        expanded = re.sub(r"\{([^}]*)\}", lambda m: m[1].split(",")[0], pattern)
        assert list(REPO.glob(expanded)), f"README.md names {pattern}, which matches no file"


def test_the_readme_links_into_the_docs_resolve():
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README.read_text())
    local = [link for link in links if "://" not in link]
    assert len(local) >= 20
    assert [link for link in local if not (REPO / link).exists()] == []


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
