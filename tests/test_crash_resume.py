"""``kill -9`` a CLI run between checkpoints and resume it with ``--ckpt_path last``: the end state equals an
uninterrupted run's bitwise (policy, reference, optimizer, LR, data position, sync count; online also the round
position, the rest of the round and the sampling RNG), and the resumed run logs into the same MLflow run."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient

from hl_lightning.checkpointing import AtomicCheckpointIO
from hl_lightning.configs_compose import compose

REPO = Path(__file__).resolve().parents[1]


def config(tmp_path: Path, smoke: str, **data) -> Path:
    """The smoke config with 6 steps and a checkpoint every 2 (so a kill at step 3 falls between two)."""
    cfg = compose(REPO / "configs" / "smoke" / f"{smoke}.yaml")
    cfg["trainer"]["max_steps"] = 6
    for cb in cfg["trainer"]["callbacks"]:
        if cb["class_path"].endswith("ModelCheckpoint"):
            cb["init_args"] = {"every_n_train_steps": 2, "save_last": True}
    cfg["trainer"]["callbacks"] = [cb for cb in cfg["trainer"]["callbacks"] if "HeldOut" not in cb["class_path"]]
    cfg["data"]["init_args"].update(data)
    path = tmp_path / f"{smoke}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def run(cfg: Path, root: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    args = [
        sys.executable,
        "-m",
        "hl_lightning",
        "fit",
        "--config",
        str(cfg),
        f"--trainer.default_root_dir={root}",
        f"--trainer.logger.init_args.tracking_uri=sqlite:///{root}/mlflow.db",
        f"--model.init_args.export_dir={root}/model",
        *extra,
    ]
    return subprocess.run(args, cwd=root.parent, env=env, capture_output=True, text=True, timeout=300)


def last_state(root: Path) -> dict:
    (path,) = root.rglob("last.ckpt")
    return torch.load(path, map_location="cpu", weights_only=True)


def assert_same(a, b, where="checkpoint"):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


TIMING = {"rollout/tokens_per_s", "rollout/time_frac"}  # wall-clock rollout metrics: never equal across runs


def without_timing(value):
    if isinstance(value, dict):
        return {k: without_timing(v) for k, v in value.items() if k not in TIMING}
    return [without_timing(v) for v in value] if isinstance(value, list) else value


STATE = ("state_dict", "optimizer_states", "lr_schedulers", "global_step", "loops")


@pytest.mark.parametrize(
    "smoke, data",
    [("humanline_dpo", {}), ("online_humanline_dpo", {"sample_every_n_steps": 3})],
    ids=["offline", "online mid-round"],
)
def test_kill_between_checkpoints_then_resume_equals_uninterrupted(smoke, data, tmp_path):
    cfg = config(tmp_path, smoke, **data)
    straight, crashed = tmp_path / "straight", tmp_path / "crashed"
    for root in (straight, crashed):
        root.mkdir()
    assert run(cfg, straight).returncode == 0
    killed = run(cfg, crashed, "--trainer.callbacks+=tests.kill_callback.KillAt", "--trainer.callbacks.step=3")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    before_kill = last_state(crashed)
    assert before_kill["global_step"] == 2  # the checkpoint before the kill
    if smoke.startswith("online"):  # N = 3: the checkpoint at step 2 holds the round's last batch, not yet trained
        assert len(before_kill["OnlineDataModule"]["queue"]) == 1
    resumed = run(cfg, crashed, "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = last_state(straight), last_state(crashed)
    for key in STATE:
        assert_same(a[key], b[key], key)
    datamodule = "OnlineDataModule" if smoke.startswith("online") else "PreferenceDataModule"
    assert_same(without_timing(a[datamodule]), without_timing(b[datamodule]), datamodule)
    sync_a, sync_b = ({k: v for k, v in c["callbacks"].items() if k.startswith("RefSyncCallback")} for c in (a, b))
    assert_same(sync_a, sync_b, "RefSyncCallback")
    assert [v["syncs"] for v in sync_a.values()] == [6] and b["global_step"] == 6
    histories = []
    for root in (straight, crashed):
        client = MlflowClient(f"sqlite:///{root}/mlflow.db")
        (one_run,) = client.search_runs([client.get_experiment_by_name("hl_lightning").experiment_id])
        assert one_run.info.status == "FINISHED"
        histories.append([(m.step, m.value) for m in client.get_metric_history(one_run.info.run_id, "loss")])
    assert histories[1] == histories[0] and len(histories[0]) == 6  # one run, every step once, same losses


def test_a_kill_during_a_save_leaves_the_previous_checkpoint_usable(tmp_path, monkeypatch):
    """The write goes to a temporary file that is renamed only when complete: a failing save keeps the old file."""
    target = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"step": 1, "w": torch.ones(3)}, target)

    def dies_half_way(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise KeyboardInterrupt  # stands for the kill

    monkeypatch.setattr(torch, "save", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"step": 2, "w": torch.zeros(3)}, target)
    monkeypatch.undo()
    back = torch.load(target, weights_only=True)
    assert back["step"] == 1 and torch.equal(back["w"], torch.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]  # no temporary file left behind
