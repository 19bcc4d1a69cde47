"""Every YAML under configs/ (recursively) instantiates, and has exactly its intended clip and sync."""

from pathlib import Path

import pytest

from hl_lightning.cli import build_cli
from hl_lightning.online import OnlineDataModule

ROOT = Path(__file__).resolve().parents[1] / "configs"
CONFIGS = sorted(p for p in ROOT.rglob("*.yaml") if p.parent.name != "reproduce")  # plans are not fit configs


def test_there_are_configs():
    assert len(CONFIGS) > 0


# What each shipped config is meant to be: (clip bounds or None, RefSyncCallback k or None, reset the
# reference each online round). A humanline or ablation config that lost its clip or its callback, or a
# plain one that gained either, fails here; a new config must be added to the table.
HUMANLINE = ((-1.5, 1.5), 1)
PLAIN = (None, None)
EXPECTED = {
    "dpo.yaml": PLAIN,
    "kto.yaml": PLAIN,
    "grpo.yaml": PLAIN,
    "ipo.yaml": PLAIN,
    "simpo.yaml": PLAIN,
    "humanline/dpo.yaml": HUMANLINE,
    "humanline/kto.yaml": HUMANLINE,
    "humanline/grpo.yaml": HUMANLINE,
    "humanline/ipo.yaml": HUMANLINE,
    "humanline/dpo_clip_only.yaml": ((-1.5, 1.5), None),
    "humanline/dpo_sync_only.yaml": (None, 1),
    "humanline/dpo_sampling.yaml": ("sampling", 1),
    "smoke/humanline_dpo_sampling.yaml": ("sampling", 1),
    "online/dpo.yaml": (*PLAIN, True),
    "online/kto.yaml": (*PLAIN, True),
    "online/grpo.yaml": (*PLAIN, True),
    "online/humanline/dpo.yaml": (*HUMANLINE, False),
    "online/humanline/kto.yaml": (*HUMANLINE, False),
    "online/humanline/grpo.yaml": (*HUMANLINE, False),
    **{f"smoke/{name}.yaml": PLAIN for name in ("dpo", "kto", "grpo", "ipo", "simpo")},
    **{f"smoke/humanline_{name}.yaml": HUMANLINE for name in ("dpo", "kto", "grpo", "ipo")},
    **{f"smoke/online_{name}.yaml": (*PLAIN, True) for name in ("dpo", "kto", "grpo")},
    **{f"smoke/online_humanline_{name}.yaml": (*HUMANLINE, False) for name in ("dpo", "kto", "grpo")},
    **{f"lora/{name}.yaml": PLAIN for name in ("dpo", "kto", "grpo")},
    **{f"lora/humanline/{name}.yaml": HUMANLINE for name in ("dpo", "kto", "grpo")},
    "lora/humanline/online_dpo.yaml": (*HUMANLINE, False),
    "smoke/lora_humanline_dpo.yaml": HUMANLINE,
    "smoke/lora_kto.yaml": PLAIN,
    "smoke/online_lora_humanline_grpo.yaml": (*HUMANLINE, False),
    "sentiment/humanline_dpo.yaml": HUMANLINE,
    "smoke/sentiment_humanline_dpo.yaml": HUMANLINE,
}
LORA = {name for name in EXPECTED if "lora" in name}


def test_every_config_has_an_expected_humanline_setup():
    assert sorted(str(p.relative_to(ROOT)) for p in CONFIGS) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_config_has_exactly_the_intended_clip_and_callback(name, tmp_path, monkeypatch):
    from hl_lightning.callbacks import RefSyncCallback
    from hl_lightning.objectives import ClipLogRatio, SampleLogRatio

    """Every YAML instantiates its trainer, module and data, and the data fits the objective; then its clip and
    callback are exactly the intended ones."""
    monkeypatch.chdir(tmp_path)
    cli = build_cli(["--config", str(ROOT / name)], run=False)
    assert isinstance(cli.datamodule, (cli.model.spec.data_module, OnlineDataModule)), "the data fits the objective"
    assert cli.trainer.max_steps > 0
    clip, k, *reset = EXPECTED[name]
    module = cli.model
    if clip is None:
        assert module.clip is None and all(obj.clip is None for obj in [module.objective] if hasattr(obj, "clip"))
    elif clip == "sampling":
        assert isinstance(module.clip, SampleLogRatio) and module.objective.clip is module.clip
    else:
        assert type(module.clip) is ClipLogRatio
        assert (module.clip.log_eps_P, module.clip.log_eps_R) == clip
        assert module.objective.clip is module.clip  # the loss object really clips
    syncs = [cb for cb in cli.trainer.callbacks if isinstance(cb, RefSyncCallback)]
    assert [cb.every_n_steps for cb in syncs] == ([] if k is None else [k])
    assert (module.hparams.peft is not None) == (name in LORA) == (module.adapters is not None)
    assert (module.ref is None) == (name in LORA or not module.needs_reference)  # LoRA keeps no second model
    assert isinstance(cli.datamodule, OnlineDataModule) == bool(reset)
    if reset:
        assert cli.datamodule.hparams.reset_reference_each_round is reset[0]
