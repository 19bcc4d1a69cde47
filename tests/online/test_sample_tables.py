"""What the model writes, in the MLflow run: an online fit logs its rounds' samples and its held-out answers as
tables, read back here with MlflowClient; the progress bar names the round."""

import re
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from hl_lightning.cli import main
from hl_lightning.online.checks import check_table
from hl_lightning.tables import HELDOUT_ANSWERS, MAX_CHARS, ONLINE_SAMPLES

REPO = Path(__file__).resolve().parents[2]


def test_online_fit_logs_samples_every_n_rounds_and_held_out_answers(tmp_path, monkeypatch, capsys):
    """3 steps, a round each; rounds 1 and 3 logged (every 2), 5 completions each; 4 held-out answers twice."""
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    main(
        [
            "fit",
            "--config",
            str(REPO / "configs" / "smoke" / "online_grpo.yaml"),
            f"--trainer.logger.init_args.tracking_uri={uri}",
            "--trainer.max_steps=3",
            "--data.init_args.table_every_n_rounds=2",
            "--data.init_args.table_rows=5",
        ]
    )
    assert re.search(r"^round 3: 100%.*\| 3/3 ", capsys.readouterr().out.replace("\r", "\n"), re.M)
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("hl_lightning").experiment_id
    (run,) = client.search_runs([experiment])
    files = [a.path for a in client.list_artifacts(run.info.run_id, "tables")]
    assert files == [HELDOUT_ANSWERS, ONLINE_SAMPLES]
    samples = client.load_table(experiment, ONLINE_SAMPLES, run_ids=[run.info.run_id])
    assert list(samples.columns) == ["step", "round", "prompt", "completion", "reward"]
    assert samples["round"].tolist() == [1] * 5 + [3] * 5 and samples["step"].tolist() == [0] * 5 + [2] * 5
    assert samples["prompt"].str.match(r"What is \d+ [-+*] \d+\?").all()
    assert samples["completion"].str.len().between(1, MAX_CHARS).all() and samples["reward"].between(0, 1.1).all()
    answers = client.load_table(experiment, HELDOUT_ANSWERS, run_ids=[run.info.run_id])
    assert list(answers.columns) == ["step", "prompt", "completion", "score"]
    assert answers["step"].tolist() == [0] * 4 + [3] * 4 and set(answers["score"]) <= {0, 1}


def test_table_options_are_checked():
    assert check_table(None, 0) == (None, 0)
    with pytest.raises(ValueError, match=r"OnlineDataModule\(table_every_n_rounds=0\): must be >= 1, or null"):
        check_table(0, 64)
    with pytest.raises(ValueError, match=r"OnlineDataModule\(table_rows=-1\): must be >= 0"):
        check_table(10, -1)
