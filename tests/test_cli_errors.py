"""The CLI as a user meets it: one-line errors with exit status 2, resume semantics, and a complete MLflow run."""

import copy
import re
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from hl_lightning.cli import main

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "configs" / "smoke" / "humanline_dpo.yaml"


def fit(tmp_path, *args, config=SMOKE):
    main(
        [
            "fit",
            "--config",
            str(config),
            f"--trainer.logger.init_args.tracking_uri=sqlite:///{tmp_path}/mlflow.db",
            f"--trainer.default_root_dir={tmp_path}/out",
            *args,
        ]
    )


def only_run(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("hl_lightning").experiment_id])
    assert len(runs) == 1
    return client, runs[0]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model.init_args.clip.init_args.log_eps_P=2.0"], r"error: ClipLogRatio: log_eps_P must be < 0, got 2.0"),
        (
            ["--trainer.callbacks+=hl_lightning.callbacks.RefSyncCallback", "--trainer.callbacks.every_n_steps=0"],
            r"error: RefSyncCallback: RefSyncCallback\(every_n_steps=0\): every_n_steps must be an integer >= 1",
        ),
        (
            ["--model.init_args.model=tiny-randm"],
            r"error: .*Unknown model spec 'tiny-randm': did you mean 'tiny-random'",
        ),
        (["--data.init_args.path=missing.jsonl"], r"error: missing.jsonl: no such file or directory"),
        (
            ["--trainer.val_check_interval=100000"],
            r"error: trainer.val_check_interval=100000 is more than the 200 "
            r"training batches of one epoch \(400 rows of arithmetic at batch_size 2\): "
            r"set trainer.val_check_interval to at most 200, or to 1.0",
        ),
    ],
)
def test_bad_input_is_one_message_and_exit_2(args, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match=r"^2$"):
        fit(tmp_path, *args)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:") or line.startswith("(full traceback")]
    assert len(lines) == 2 and "Traceback" not in err and "Namespace(" not in err, err[-2000:]
    assert re.search(message, lines[0]), lines[0]


SCRATCH = {  # a config written from scratch (no extends), valid as it is; each case below breaks one key
    "trainer": {
        "max_steps": 2,
        "logger": False,
        "callbacks": [
            {"class_path": "hl_lightning.callbacks.MetricsPlot"},
            {"class_path": "hl_lightning.callbacks.HeldOutEval", "init_args": {"max_new_tokens": 4, "limit": 2}},
        ],
    },
    "model": {
        "class_path": "hl_lightning.modules.DPOModule",
        "init_args": {
            "model": "tiny-random",
            "beta": 0.1,
            "clip": {"class_path": "hl_lightning.objectives.ClipLogRatio", "init_args": {"log_eps_P": -1.5}},
        },
    },
    "data": {"class_path": "hl_lightning.data.PreferenceDataModule", "init_args": {"path": "arithmetic"}},
}
MODEL, CLIP = ("model", "init_args"), ("model", "init_args", "clip", "init_args")
HELDOUT = ("trainer", "callbacks", 1, "init_args")
MISTAKES = [  # (where in SCRATCH, old key or None, new key, value; the same as a flag; the one line expected)
    (
        ("trainer",),
        "max_steps",
        "max_step",
        2,
        "trainer.max_step: Trainer has no option 'max_step' (did you mean 'max_steps'?)",
    ),
    (MODEL, "beta", "betta", 0.1, "model.init_args.betta: DPOModule has no option 'betta' (did you mean 'beta'?)"),
    (
        CLIP,
        "log_eps_P",
        "log_eps_p",
        -1.5,
        "model.init_args.clip.init_args.log_eps_p: ClipLogRatio has no option 'log_eps_p' (did you mean 'log_eps_P'?)",
    ),
    (
        ("data", "init_args"),
        None,
        "batch_sise",
        2,
        "data.init_args.batch_sise: PreferenceDataModule has no option 'batch_sise' (did you mean 'batch_size'?)",
    ),
    (MODEL, None, "beta", "high", "model.init_args.beta: 'high' is not a float"),
    (CLIP, None, "log_eps_P", "low", "model.init_args.clip.init_args.log_eps_P: 'low' is not a float"),
    (("trainer",), None, "max_steps", "many", "trainer.max_steps: 'many' is not an int"),
    (
        ("trainer",),
        None,
        "enable_checkpointing",
        "maybe",
        "trainer.enable_checkpointing: 'maybe' is not a bool or None",
    ),
    (
        ("model",),
        None,
        "class_path",
        "hl_lightning.modules.DPOModel",
        "model.class_path: no class hl_lightning.modules.DPOModel (did you mean DPOModule?)",
    ),
    (
        ("model", "init_args", "optimizer"),
        None,
        "class_path",
        "torch.optim.AdamX",
        "model.init_args.optimizer.class_path: no class torch.optim.AdamX (did you mean Adamax?)",
    ),
]
CALLBACK_MISTAKES = [  # a YAML file only: on the command line, trainer.callbacks options go to the last callback
    (
        HELDOUT,
        "max_new_tokens",
        "max_new_token",
        4,
        "trainer.callbacks[HeldOutEval].init_args.max_new_token: HeldOutEval has no option 'max_new_token' (did "
        "you mean 'max_new_tokens'?)",
    ),
    (HELDOUT, None, "limit", "abc", "trainer.callbacks[HeldOutEval].init_args.limit: 'abc' is not an int or None"),
    (
        HELDOUT,
        None,
        "metric",
        "bogus",
        "trainer.callbacks[HeldOutEval].init_args.metric: 'bogus' is not one of 'auto', 'exact_match', 'reward', "
        "'win_rate'",
    ),
    (
        ("trainer", "callbacks", 0),
        None,
        "class_path",
        "hl_lightning.callbacks.MetricPlot",
        "trainer.callbacks: no class hl_lightning.callbacks.MetricPlot (did you mean MetricsPlot?)",
    ),
]


def one_error_line(capsys, args: list[str]) -> str:
    """Run the CLI on ``args``; it must exit with status 2 and write exactly one line to stderr."""
    with pytest.raises(SystemExit, match=r"^2$"):
        main(args)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err[-3000:]
    return lines[0].removeprefix("error: ")


@pytest.mark.parametrize(
    "where, old, new, value, expected", MISTAKES + CALLBACK_MISTAKES, ids=[m[4] for m in MISTAKES + CALLBACK_MISTAKES]
)
def test_a_mistake_in_a_yaml_file_is_one_line_naming_the_key(
    where, old, new, value, expected, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)  # a mistake the CLI missed would train, here
    config = copy.deepcopy(SCRATCH)
    node = config
    for step in where:
        node = node.setdefault(step, {}) if isinstance(node, dict) else node[step]
    node.pop(old, None)
    node[new] = value
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(config))
    assert one_error_line(capsys, ["fit", "--config", str(path)]) == expected


@pytest.mark.parametrize(
    "flags, expected",
    [
        ([f"--{'.'.join(map(str, where))}.{new}={value}"], expected)
        for where, old, new, value, expected in MISTAKES
        if old is None or new != "max_step"
    ]
    + [
        (["--trainer.max_step=3"], MISTAKES[0][4]),  # not taken as an abbreviation of max_steps
        (["--trainer.max_step", "3"], MISTAKES[0][4]),
        (["--model.init_args.optimizer=torch.optim.AdamX"], MISTAKES[-1][4]),
        (["--model=hl_lightning.modules.DPOModel"], MISTAKES[-2][4]),
        (
            ["--trainer.callbacks+=hl_lightning.callbacks.MetricPlot"],
            "trainer.callbacks: no class hl_lightning.callbacks.MetricPlot (did you mean MetricsPlot?)",
        ),
        (
            ["--trainer.callbacks.max_new_token=3"],  # the last callback's options
            "trainer.callbacks[HeldOutEval].init_args.max_new_token: HeldOutEval has no option 'max_new_token' (did "
            "you mean 'max_new_tokens'?)",
        ),
        (
            ["--seed_everythin=1"],
            "seed_everythin: the fit command has no option 'seed_everythin' (did you mean 'seed_everything'?)",
        ),
    ],
    ids=str,
)
def test_a_mistake_in_a_flag_is_one_line_naming_the_key(flags, expected, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(SCRATCH))
    assert one_error_line(capsys, ["fit", "--config", str(path), *flags]) == expected


def test_debug_keeps_the_parser_s_full_report(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(SCRATCH))
    with pytest.raises(SystemExit, match=r"^2$"):
        main(["fit", "--config", str(path), "--debug", "--model.init_args.betta=0.1"])
    err = capsys.readouterr().err
    assert "usage:" in err and 'Parser key "model"' in err and "Option 'betta' is not accepted" in err


def test_debug_shows_the_traceback(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="log_eps_P must be < 0"):
        fit(tmp_path, "--debug", "--model.init_args.clip.init_args.log_eps_P=2.0")


def test_mlflow_run_has_every_hyperparameter_and_filterable_tags(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fit(tmp_path, "--trainer.accumulate_grad_batches=2", "--trainer.max_steps=2")
    _, run = only_run(tmp_path)
    params, tags = run.data.params, run.data.tags
    expected = {
        "model.class_path": "hl_lightning.modules.DPOModule",
        "model.init_args.optimizer.init_args.lr": "1e-05",
        "model.init_args.optimizer.class_path": "torch.optim.AdamW",
        "model.init_args.lr_scheduler.class_path": "torch.optim.lr_scheduler.LinearLR",
        "model.init_args.clip.init_args.log_eps_P": "-1.5",
        "model.init_args.clip.init_args.log_eps_R": "1.5",
        "trainer.callbacks.RefSyncCallback.every_n_steps": "1",
        "data.init_args.batch_size": "2",
        "trainer.accumulate_grad_batches": "2",
        "trainer.max_steps": "2",
        "seed_everything": "0",
    }
    assert {k: params.get(k) for k in expected} == expected
    assert "trainer.precision" in params and "_instantiator" not in params
    assert tags["humanline.clip"] == "[-1.5, 1.5]" and tags["humanline.sync_k"] == "1"
    assert tags["objective"] == "DPOModule" and tags["data_mode"] == "offline"
    for package in ("torch", "transformers", "lightning", "hl-lightning"):
        assert tags[f"version.{package}"], package
    assert len(tags["git_commit"].split("+")[0]) == 40


def test_a_failed_setup_marks_its_run_failed_with_the_error(tmp_path, monkeypatch, capsys):
    """KTO on pair batches: refused at the module's setup, after the run was created."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match=r"^2$"):
        fit(
            tmp_path,
            "--data=hl_lightning.data.PreferenceDataModule",
            "--data.init_args.path=arithmetic",
            config=REPO / "configs" / "smoke" / "humanline_kto.yaml",
        )
    assert "KTOModule trains on unpaired items" in capsys.readouterr().err
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("hl_lightning")
    for run in client.search_runs([experiment.experiment_id]) if experiment else []:
        assert run.info.status == "FAILED" and "KTOModule trains on unpaired items" in run.data.tags["error"]


def test_resume_keeps_safe_options_and_refuses_changed_ones(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    fit(tmp_path, "--model.init_args.export_dir=first")
    fit(tmp_path, "--ckpt_path", "last", "--trainer.max_steps=3", "--model.init_args.export_dir=second")
    assert (tmp_path / "second" / "config.json").exists()  # the command line's export_dir, not the checkpoint's
    client, run = only_run(tmp_path)  # ... and the same MLflow run
    assert [m.step for m in client.get_metric_history(run.info.run_id, "humanline/syncs")][-1] == 2
    assert run.data.tags["resumed.model.init_args.export_dir"] == "second"
    with pytest.raises(SystemExit, match=r"^2$"):
        fit(tmp_path, "--ckpt_path", "last", "--trainer.max_steps=4", "--model.init_args.beta=0.5")
    err = capsys.readouterr().err
    assert "Cannot resume from" in err and "model.init_args.beta: checkpoint 0.1, now 0.5" in err
    _, again = only_run(tmp_path)
    assert again.info.run_id == run.info.run_id
