"""Every YAML under configs/ (recursively) parses and instantiates its trainer, module and data."""

from pathlib import Path

import pytest

from hl_lightning.cli import build_cli

ROOT = Path(__file__).resolve().parents[1] / "configs"
CONFIGS = sorted(ROOT.rglob("*.yaml"))


def test_there_are_configs():
    assert len(CONFIGS) > 0


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_config_instantiates(config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cli = build_cli(["--config", str(config)], run=False)
    assert cli.model is not None and cli.datamodule is not None and cli.trainer is not None
