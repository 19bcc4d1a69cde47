"""The CLI as a user meets it: one-line errors with exit status 2, resume semantics, and a complete MLflow run."""

import re
from pathlib import Path

import pytest
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
