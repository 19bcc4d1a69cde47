"""Config composition (``extends``): the merge rule by hand, its errors, the CLI's --config forms, and the sweep
plan's overrides going through the same by-class callback code."""

from pathlib import Path

import pytest
import yaml

from hl_lightning.configs_compose import ConfigError, compose, compose_args, merge, merge_callbacks
from hl_lightning.reproduce.plan import apply

PROGRESS = {"class_path": "lightning.pytorch.callbacks.TQDMProgressBar"}
CKPT = {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint", "init_args": {"every_n_train_steps": 20}}
SYNC = {"class_path": "hl_lightning.callbacks.RefSyncCallback", "init_args": {"every_n_steps": 1}}


def write(folder: Path, name: str, data) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def test_mappings_merge_recursively_and_scalars_and_lists_are_replaced():
    base = {"a": {"b": 1, "c": {"d": 2, "e": 3}}, "f": [1, 2], "g": "x", "h": {"i": 1}}
    layer = {"a": {"c": {"e": 30, "new": 4}}, "f": [9], "g": None, "h": 5}
    assert merge(base, layer) == {"a": {"b": 1, "c": {"d": 2, "e": 30, "new": 4}}, "f": [9], "g": None, "h": 5}
    assert base["a"]["c"] == {"d": 2, "e": 3}  # inputs untouched
    assert merge({"f": [1]}, {"f": {"x": 1}}) == {"f": {"x": 1}}


def test_a_changed_class_path_keeps_the_init_args_it_does_not_set():
    base = {"model": {"class_path": "m.DPOModule", "init_args": {"beta": 0.1, "model": "tiny-random"}}}
    layer = {"model": {"class_path": "m.IPOModule", "init_args": {"beta": 0.2}}}
    assert merge(base, layer)["model"] == {
        "class_path": "m.IPOModule",
        "init_args": {"beta": 0.2, "model": "tiny-random"},
    }


def test_callbacks_merge_by_class_append_new_and_remove():
    base = {"trainer": {"callbacks": [PROGRESS, CKPT]}}
    layer = {
        "trainer": {
            "callbacks": [
                {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint", "init_args": {"save_last": True}},
                SYNC,
                {"class_path": "lightning.pytorch.callbacks.TQDMProgressBar", "remove": True},
            ]
        }
    }
    merged = merge(base, layer)["trainer"]["callbacks"]
    ckpt = {"class_path": CKPT["class_path"], "init_args": {"every_n_train_steps": 20, "save_last": True}}
    assert merged == [ckpt, SYNC]  # updated in place, appended, removed; no "remove" key left behind
    assert merge({"callbacks": [CKPT]}, {"callbacks": [SYNC]}) == {"callbacks": [SYNC]}  # an ordinary list elsewhere


def test_a_class_named_twice_in_one_layer_is_appended_twice_but_an_ambiguous_update_is_refused():
    two = merge_callbacks([], [CKPT, CKPT])
    assert two == [CKPT, CKPT]  # e.g. two ModelCheckpoints written in one file
    with pytest.raises(ConfigError, match=r"^layer.yaml: trainer.callbacks names ModelCheckpoint, of which .* has 2"):
        merge_callbacks(two, [CKPT], "layer.yaml")
    with pytest.raises(ConfigError, match=r"^layer.yaml: every trainer.callbacks entry needs a class_path"):
        merge_callbacks([], ["ModelCheckpoint"], "layer.yaml")


def test_plan_overrides_use_the_same_by_class_rule():
    config = {"trainer": {"callbacks": [PROGRESS, CKPT, SYNC]}, "model": {"init_args": {"clip": {"a": 1}}}}
    out = apply(
        config,
        {
            "trainer.callbacks.RefSyncCallback": None,
            "trainer.callbacks.ModelCheckpoint.init_args.save_last": True,
            "trainer.callbacks.HeldOutEval": {"init_args": {"limit": 4}},
            "model.init_args.clip": None,
        },
    )
    assert out["trainer"]["callbacks"] == [
        PROGRESS,
        {"class_path": CKPT["class_path"], "init_args": {"every_n_train_steps": 20, "save_last": True}},
        {"class_path": "hl_lightning.callbacks.HeldOutEval", "init_args": {"limit": 4}},
    ]
    assert out["model"]["init_args"]["clip"] is None and config["trainer"]["callbacks"][2] == SYNC


def test_extends_merges_in_order_relative_to_each_file_and_recursively(tmp_path):
    write(tmp_path, "layers/base.yaml", {"trainer": {"max_steps": 60, "callbacks": [PROGRESS, CKPT]}, "x": 1})
    write(tmp_path, "layers/more.yaml", {"extends": ["base.yaml"], "x": 2, "trainer": {"callbacks": [SYNC]}})
    write(tmp_path, "layers/steps.yaml", {"trainer": {"max_steps": 2}})
    top = write(tmp_path, "runs/top.yaml", {"extends": ["../layers/more.yaml", "../layers/steps.yaml"], "x": 3})
    assert compose(top) == {"trainer": {"max_steps": 2, "callbacks": [PROGRESS, CKPT, SYNC]}, "x": 3}
    assert compose(tmp_path / "layers" / "steps.yaml") == {"trainer": {"max_steps": 2}}  # no extends: as it is


def error(path: Path) -> str:
    with pytest.raises(ConfigError) as raised:
        compose(path)
    assert "\n" not in str(raised.value)  # one line
    return str(raised.value)


def test_extends_errors_are_one_line_naming_the_file(tmp_path):
    missing = write(tmp_path, "a.yaml", {"extends": ["nope.yaml"]})
    assert error(missing).startswith(f"{missing}: extends 'nope.yaml', which does not exist ({tmp_path / 'nope.yaml'})")
    write(tmp_path, "b.yaml", {"extends": ["c.yaml"]})
    write(tmp_path, "c.yaml", {"extends": ["b.yaml"]})
    b, c = (tmp_path / "b.yaml").resolve(), (tmp_path / "c.yaml").resolve()
    assert error(tmp_path / "b.yaml").startswith(f"{c}: extends makes a cycle ({b} -> {c} -> {b})")
    scalar = write(tmp_path, "d.yaml", {"extends": "a.yaml"})
    assert error(scalar).startswith(f"{scalar}: extends must be a list of YAML files relative to this file")
    assert error(write(tmp_path, "e.yaml", "- a\n- b\n")).startswith(
        f"{tmp_path / 'e.yaml'}: a config is a YAML mapping"
    )
    assert error(write(tmp_path, "g.yaml", "a: [\n")).startswith(f"{tmp_path / 'g.yaml'}: not valid YAML")
    assert error(tmp_path / "f.yaml").startswith(f"{tmp_path / 'f.yaml'}: cannot read the config")


def test_compose_args_replaces_every_config_form_and_leaves_the_rest(tmp_path):
    write(tmp_path, "base.yaml", {"trainer": {"max_steps": 5}})
    composed = write(tmp_path, "run.yaml", {"extends": ["base.yaml"], "seed_everything": 1})
    plain = write(tmp_path, "plain.yaml", {"seed_everything": 2})
    files: list[str] = []
    args = ["fit", "--config", str(composed), f"--config={composed}", "-c", str(plain), "--trainer.max_steps=3"]
    out = compose_args(args, files)
    assert yaml.safe_load(out[2]) == {"trainer": {"max_steps": 5}, "seed_everything": 1}
    assert out[3].startswith("--config=") and yaml.safe_load(out[3].split("=", 1)[1]) == yaml.safe_load(out[2])
    assert out[:2] == args[:2] and out[4:] == args[4:]  # a config without extends, and other options, untouched
    assert files == [str(composed), str(composed)]
    assert compose_args(["fit", "--config", "seed_everything: 3"]) == ["fit", "--config", "seed_everything: 3"]


def test_the_cli_reports_a_broken_extends_in_one_line(tmp_path, capsys):
    from hl_lightning.cli import main

    bad = write(tmp_path, "bad.yaml", {"extends": ["../layers/nope.yaml"]})
    with pytest.raises(SystemExit, match=r"^2$"):
        main(["fit", f"--config={bad}"])
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"error: {bad}: extends '../layers/nope.yaml', which does not exist") and len(err) == 2
