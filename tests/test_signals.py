"""A signal sent to a CLI run from outside during step 3 stops it after that step with a checkpoint of it
(``PreemptionCheckpoint``, in every shipped config), and ``--ckpt_path last`` resumes it to the uninterrupted run's
end state bitwise (weights, optimizer, LR, loop and data position, sync count), every step logged once in one MLflow
run: SIGTERM, and SLURM's requeue signal with SLURM faked (its variables, and an ``scontrol`` that records its call
and then, as SLURM does on a requeue, sends the job SIGTERM)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.test_crash_resume import REPO, STATE, assert_same, config, last_state

STOP = 3  # the signal lands during step 3; the periodic checkpoints are at steps 2, 4, 6
SLURM = {
    "SLURM_JOB_ID": "4242",
    "SLURM_JOB_NAME": "hl-dpo",
    "SLURM_NTASKS": "1",
    "SLURM_NTASKS_PER_NODE": "1",
    "SLURM_NNODES": "1",
    "SLURM_PROCID": "0",
    "SLURM_LOCALID": "0",
    "SLURM_NODEID": "0",
    "SLURM_NODELIST": "127.0.0.1",
}
FAKE_SCONTROL = '#!/bin/sh\necho "$*" >> "$(dirname "$0")/scontrol.calls"\nkill -TERM "$PPID"\n'


def fit_command(cfg: Path, root: Path, *extra: str) -> list[str]:
    return [
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


def environment(extra: dict[str, str]) -> dict[str, str]:
    plain = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    return {**plain, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", **extra}


def signalled_run(cfg: Path, root: Path, signum: int, env: dict[str, str]) -> int:
    """A CLI run held before step ``STOP`` (``PauseAt``) until ``PreemptionCheckpoint`` has a signal; ``signum`` is
    sent from here once it is held. Returns the exit status."""
    pause = ["--trainer.callbacks+=tests.signal_callback.PauseAt", f"--trainer.callbacks.step={STOP}"]
    command = fit_command(cfg, root, *pause, f"--trainer.callbacks.marker={root}/paused")
    with open(root / "run.log", "w") as log:
        proc = subprocess.Popen(command, cwd=root.parent, env=environment(env), stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + 240
            while not (root / "paused.rank0").exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            proc.send_signal(signum)
            return proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def loss_history(root: Path) -> list[tuple[int, float]]:
    """The ``loss`` of every step in the one MLflow run under ``root`` (which must have finished)."""
    client = MlflowClient(f"sqlite:///{root}/mlflow.db")
    (one_run,) = client.search_runs([client.get_experiment_by_name("hl_lightning").experiment_id])
    assert one_run.info.status == "FINISHED"
    return [(m.step, m.value) for m in client.get_metric_history(one_run.info.run_id, "loss")]


def assert_resumes_to(straight: Path, cfg: Path, root: Path, env: dict[str, str]) -> None:
    """``fit --ckpt_path last`` in ``root`` ends in the state the uninterrupted run in ``straight`` ended in."""
    command = fit_command(cfg, root, "--ckpt_path", "last")
    resumed = subprocess.run(
        command, cwd=root.parent, env=environment(env), capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = last_state(straight), last_state(root)
    for key in (*STATE, "PreferenceDataModule"):
        assert_same(a[key], b[key], key)
    sync_a, sync_b = ({k: v for k, v in c["callbacks"].items() if k.startswith("RefSyncCallback")} for c in (a, b))
    assert_same(sync_a, sync_b, "RefSyncCallback")
    assert loss_history(root) == loss_history(straight) and len(loss_history(root)) == 6


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> tuple[Path, Path]:
    """The smoke humanline DPO config (6 steps, a checkpoint every 2) and the root of its uninterrupted run."""
    base = tmp_path_factory.mktemp("signals")
    cfg, root = config(base, "humanline_dpo"), base / "straight"
    root.mkdir()
    done = subprocess.run(fit_command(cfg, root), cwd=base, env=environment({}), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return cfg, root


def test_sigterm_saves_the_step_reached_and_resumes_exactly(straight, tmp_path):
    """SIGTERM during step 3: the run stops after it (exit status 0), saved through the config's ModelCheckpoint
    (``epoch=0-step=3.ckpt`` and ``last.ckpt``, no temporary file left)."""
    cfg, straight_root = straight
    root = tmp_path / "run"
    root.mkdir()
    assert signalled_run(cfg, root, signal.SIGTERM, {}) == 0, (root / "run.log").read_text()[-3000:]
    (folder,) = {p.parent for p in root.rglob("*.ckpt")}
    assert sorted(p.name for p in folder.iterdir()) == ["epoch=0-step=2.ckpt", "epoch=0-step=3.ckpt", "last.ckpt"]
    assert last_state(root)["global_step"] == STOP
    assert_resumes_to(straight_root, cfg, root, {})


def test_slurm_requeue_signal_saves_requeues_and_resumes_exactly(straight, tmp_path):
    """Under SLURM (faked), SIGUSR1 during step 3: the run saves step 3 (``last.ckpt``), then runs ``scontrol requeue
    <job id>`` once, and stops; Lightning's own handler, which would save ``hpc_ckpt_1.ckpt`` from inside the signal
    handler, is not used. The requeued job (same variables) resumes ``last.ckpt`` exactly."""
    cfg, straight_root = straight
    root, bin_dir = tmp_path / "run", tmp_path / "bin"
    root.mkdir()
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(FAKE_SCONTROL)
    (bin_dir / "scontrol").chmod(0o755)
    slurm = {**SLURM, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    assert signalled_run(cfg, root, signal.SIGUSR1, slurm) == 0, (root / "run.log").read_text()[-3000:]
    assert (bin_dir / "scontrol.calls").read_text() == "requeue 4242\n"
    (folder,) = {p.parent for p in root.rglob("*.ckpt")}
    assert sorted(p.name for p in folder.iterdir()) == ["epoch=0-step=2.ckpt", "epoch=0-step=3.ckpt", "last.ckpt"]
    assert last_state(root)["global_step"] == STOP and not list(root.glob("hpc_ckpt_*"))
    assert_resumes_to(straight_root, cfg, root, slurm)
