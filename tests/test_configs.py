"""Every runnable config under configs/ instantiates (composed from its layers) and has exactly its intended clip
and sync; no block of YAML is copied across the configs; ``hl-lightning configs list|copy``."""

import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from hl_lightning.callbacks import RefSyncCallback
from hl_lightning.cli import build_cli, main
from hl_lightning.configs_catalog import runnable
from hl_lightning.objectives import ClipLogRatio, SampleLogRatio
from hl_lightning.online import OnlineDataModule

ROOT = Path(__file__).resolve().parents[1] / "configs"
CONFIGS = sorted(runnable(ROOT).values())  # not the layers (layers/) nor the sweep plans (reproduce/)


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
    assert all((ROOT / "layers" / name).exists() for name in ("base.yaml", "humanline.yaml", "smoke.yaml"))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_config_has_exactly_the_intended_clip_and_callback(name, tmp_path, monkeypatch):
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


def repeated_blocks(paths: list[Path], size: int = 5, files: int = 3) -> dict[tuple[str, ...], list[str]]:
    """Every block of ``size`` consecutive non-empty lines that ``files`` or more of ``paths`` share."""
    seen: dict[tuple[str, ...], set[str]] = defaultdict(set)
    for path in paths:
        lines = [line.rstrip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        for i in range(len(lines) - size + 1):
            seen[tuple(lines[i : i + size])].add(str(path))
    return {block: sorted(where) for block, where in seen.items() if len(where) >= files}


def test_the_duplication_checker_sees_a_copied_block(tmp_path):
    block = "a: 1\nb: 2\n\nc: 3\nd: 4\ne: 5\n"
    for name in ("x", "y", "z"):
        (tmp_path / f"{name}.yaml").write_text(f"# {name}\n{block}")
    paths = sorted(tmp_path.glob("*.yaml"))
    assert list(repeated_blocks(paths)) == [("a: 1", "b: 2", "c: 3", "d: 4", "e: 5")]  # empty lines do not split it
    assert repeated_blocks(paths[:2]) == {}  # two files may share a block


def test_no_block_of_five_lines_is_copied_into_three_configs():
    """Shared settings live in one layer (configs/layers/) that the configs extend, not in copies."""
    assert repeated_blocks(sorted(ROOT.rglob("*.yaml"))) == {}


def test_configs_list_shows_every_runnable_config_with_its_description(capsys):
    main(["configs", "list"])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == sorted(name.removesuffix(".yaml") for name in EXPECTED)
    described = dict(line.split(None, 1) for line in lines)
    assert described["humanline/dpo"].startswith("Humanline offline DPO on the shipped arithmetic preference pairs")
    assert not any(name.startswith(("layers/", "reproduce/")) for name in described)


def test_configs_copy_writes_a_flat_config_that_fits_on_its_own(tmp_path, monkeypatch):
    """As a pip user would: copy a shipped smoke config out of the package, then fit it from another folder."""
    script = Path(sys.executable).parent / "hl-lightning"
    copy = [str(script), "configs", "copy", "smoke/humanline_dpo", "mine.yaml"]
    out = subprocess.run(copy, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    text = (tmp_path / "mine.yaml").read_text()
    assert text.splitlines()[:2] == [
        "# Smoke test of configs/humanline/dpo.yaml: tiny random Llama, 2 steps.",
        "# hl_lightning's shipped config smoke/humanline_dpo (configs/smoke/humanline_dpo.yaml),",
    ]
    flat = yaml.safe_load(text)
    assert "extends" not in flat and flat["model"]["init_args"]["clip"]["init_args"] == {
        "log_eps_P": -1.5,
        "log_eps_R": 1.5,
    }
    assert [cb["class_path"].rsplit(".", 1)[1] for cb in flat["trainer"]["callbacks"]][-1] == "RefSyncCallback"
    monkeypatch.chdir(tmp_path)
    main(["fit", "--config", "mine.yaml", f"--trainer.logger.init_args.tracking_uri=sqlite:///{tmp_path}/m.db"])
    assert (tmp_path / "outputs" / "smoke-humanline_dpo" / "model" / "config.json").exists()


def test_configs_copy_refuses_to_overwrite_and_names_the_closest_config(tmp_path, capsys):
    dest = tmp_path / "mine.yaml"
    dest.write_text("mine")
    with pytest.raises(SystemExit, match=r"^2$"):
        main(["configs", "copy", "smoke/dpo", str(dest)])
    assert (
        f"error: {dest} exists; pass --force to overwrite it" in capsys.readouterr().err and dest.read_text() == "mine"
    )
    main(["configs", "copy", "smoke/dpo", str(dest), "--force"])
    assert yaml.safe_load(dest.read_text())["trainer"]["max_steps"] == 2
    with pytest.raises(SystemExit, match=r"^2$"):
        main(["configs", "copy", "humanline/dpp", str(tmp_path / "other.yaml")])
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (
        "error: no shipped config 'humanline/dpp'; did you mean 'humanline/dpo'? "
        "`hl-lightning configs list` shows them all"
    )


def test_a_composed_config_is_parsed_as_its_file_and_in_the_equals_form(tmp_path, monkeypatch):
    """``--config=FILE`` composes too, and the parsed ``config`` entry (an MLflow param) names the file."""
    monkeypatch.chdir(tmp_path)
    path = ROOT / "smoke" / "online_kto.yaml"
    cli = build_cli([f"--config={path}"], run=False)
    assert cli.config.config == [str(path)]
    assert cli.datamodule.hparams.max_new_tokens == 6 and cli.model.hparams.model == "tiny-random"
