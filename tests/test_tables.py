"""Tables of completions in the MLflow run: capped rows and text, chat prompts as text, appended by step; nothing
without an MLflow logger or off rank zero."""

from types import SimpleNamespace

from lightning.pytorch.loggers import CSVLogger, MLFlowLogger
from mlflow.tracking import MlflowClient

from hl_lightning.tables import MAX_CHARS, log_table

CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
ROWS = [{"prompt": CHAT, "completion": "x" * 2000, "score": 1.0}, {"prompt": "Two?", "completion": "2", "score": 0.0}]


def test_rows_and_text_are_capped_and_appended_by_step(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    logger = MLFlowLogger(experiment_name="tables", tracking_uri=uri)
    trainer = SimpleNamespace(loggers=[CSVLogger(tmp_path), logger], is_global_zero=True)
    assert log_table(trainer, ROWS, "tables/t.json", max_rows=1, step=0) == 1
    assert log_table(trainer, ROWS, "tables/t.json", max_rows=5, step=4) == 2
    table = MlflowClient(uri).load_table(logger.experiment_id, "tables/t.json", run_ids=[logger.run_id])
    assert list(table.columns) == ["step", "prompt", "completion", "score"] and table["step"].tolist() == [0, 4, 4]
    assert table["prompt"].tolist() == ["system: Be brief.\nuser: Hi"] * 2 + ["Two?"]
    assert table["completion"].str.len().tolist() == [MAX_CHARS, MAX_CHARS, 1]
    assert table["completion"][0] == "x" * (MAX_CHARS - 3) + "..."


def test_nothing_without_an_mlflow_logger_off_rank_zero_or_with_no_rows(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    logger = MLFlowLogger(experiment_name="tables", tracking_uri=uri)
    assert log_table(SimpleNamespace(loggers=[CSVLogger(tmp_path)], is_global_zero=True), ROWS, "t.json", 8) == 0
    assert log_table(SimpleNamespace(loggers=[logger], is_global_zero=False), ROWS, "t.json", 8) == 0
    assert log_table(SimpleNamespace(loggers=[logger], is_global_zero=True), ROWS, "t.json", 0) == 0
    assert logger._experiment_id is None  # the run was never even created
