"""2 nodes x 1 process through Lightning: two OS processes, each a plain Trainer run with ``num_nodes=2, devices=1``
and its own ``NODE_RANK``, meeting over TCP on 127.0.0.1 (gloo), as two machines would. DDP and FSDP2
(``ModelParallelStrategy``): the humanline sync rule on every rank, KTO's KL estimate over both nodes, and the
checkpoint a 2-node run writes on SIGTERM (sent to one node), which a new 2-node launch resumes to the uninterrupted
run's state, bitwise."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

K, SYNC_STEPS = 2, 5  # sync every K steps, in a run of SYNC_STEPS steps
STEPS, STOP = 6, 3  # the uninterrupted run's steps; the interrupted run's checkpoint step (mid-epoch)

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tests" / "multinode_script.py"
LAUNCHER_VARS = ("LOCAL_RANK", "GROUP_RANK", "RANK", "NODE_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
SCHEDULER_PREFIXES = ("SLURM_", "TORCHELASTIC_", "OMPI_", "PMI_")  # would make Lightning pick another environment


def free_port() -> int:
    """A TCP port nobody listens on now (the OS picks it): never one of a fixed range that parallel tests share."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_env(node_rank: int, port: int) -> dict[str, str]:
    """What a cluster's launcher sets on node ``node_rank``; nothing that names a scheduler."""
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARS and not k.startswith(SCHEDULER_PREFIXES)}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env.update(NODE_RANK=str(node_rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2")
    return env


def slurm_env(bin_dir: Path) -> Callable[[int, int], dict[str, str]]:
    """What ``srun`` sets in task ``rank`` of a 2-node job with 1 task per node, and ``bin_dir`` (a fake
    ``scontrol``) leading PATH."""

    def env(rank: int, port: int) -> dict[str, str]:
        plain = {k: v for k, v in node_env(rank, port).items() if k not in ("NODE_RANK", "WORLD_SIZE")}
        return {
            **plain,
            **dict(SLURM_JOB_ID="4242", SLURM_JOB_NAME="hl-dpo", SLURM_NTASKS="2", SLURM_NTASKS_PER_NODE="1"),
            **dict(SLURM_NNODES="2", SLURM_PROCID=str(rank), SLURM_LOCALID="0", SLURM_NODEID=str(rank)),
            **dict(SLURM_NODELIST="127.0.0.1", PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}"),
        }

    return env


Poll = Callable[[list[subprocess.Popen]], None]


def sigterm_when_held(pause: Path) -> Poll:
    """Send SIGTERM to each node once it is held at ``pause`` (``PauseAt``'s marker file for its rank)."""
    sent: set[int] = set()

    def poll(procs: list[subprocess.Popen]) -> None:
        for rank, proc in enumerate(procs):
            if rank not in sent and Path(f"{pause}.rank{rank}").exists():
                proc.send_signal(signal.SIGTERM)
                sent.add(rank)

    return poll


def signal_both_after_start(started: Path, signum: int) -> Poll:
    """Once both nodes have marked ``started``, send ``signum`` to both (once)."""
    sent: list[bool] = []

    def poll(procs: list[subprocess.Popen]) -> None:
        if not sent and all(Path(f"{started}.rank{rank}").exists() for rank in (0, 1)):
            for proc in procs:
                proc.send_signal(signum)
            sent.append(True)

    return poll


def run_nodes(args: list[str], logs: list[Path], env, port: int, timeout: float, poll: Poll | None) -> list[int | None]:
    """Start node 0 and node 1 (``env(rank, port)``) and wait for both, calling ``poll`` every 0.1 s meanwhile.
    Kill what is left on failure or timeout."""
    procs: list[subprocess.Popen] = []
    try:
        for rank, log in enumerate(logs):
            with open(log, "w") as f:
                command = [sys.executable, str(SCRIPT), *args]
                procs.append(subprocess.Popen(command, env=env(rank, port), cwd=REPO, stdout=f, stderr=f))
        deadline = time.monotonic() + timeout
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            if poll is not None:
                poll(procs)
            time.sleep(0.1)
        return [p.poll() for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def launch_nodes(mode: str, strategy: str, out: Path, env=node_env, poll: Poll | None = None, timeout=300) -> None:
    """``multinode_script.py mode strategy out`` on both nodes; a new port if the chosen one was taken meanwhile."""
    for attempt in range(3):
        logs = [out / f"{mode}-node{rank}-try{attempt}.log" for rank in (0, 1)]
        codes = run_nodes([mode, strategy, str(out)], logs, env, free_port(), timeout, poll)
        text = "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for log in logs)
        if codes == [0, 0]:
            return
        if "address already in use" not in text.lower():
            raise AssertionError(f"exit codes {codes}\n{text}")
    raise AssertionError(f"no free port in 3 tries\n{text}")


@pytest.fixture(scope="module", params=["ddp", "fsdp"])
def first_launch(request, tmp_path_factory) -> tuple[str, Path]:
    """The first 2-node launch: sync run, KTO step, uninterrupted run and the run that stops at a checkpoint."""
    out = tmp_path_factory.mktemp(request.param)
    launch_nodes("first", request.param, out, poll=sigterm_when_held(out / "paused"))
    return request.param, out


def reports(out: Path) -> list[dict]:
    return [json.loads((out / f"report_rank{rank}.json").read_text()) for rank in (0, 1)]


def test_every_node_follows_the_sync_rule(first_launch):
    """On each node's rank: the reference equals the policy right after the sync point of steps 0, k, 2k (and only
    those), and at step t >= 1 it holds the policy of step k * floor((t - 1) / k): a lag of 1..k steps."""
    strategy, out = first_launch
    for rank, report in enumerate(r["sync"] for r in reports(out)):
        where = report["global_rank"], report["node_rank"], report["local_rank"], report["world_size"]
        assert where == (rank, rank, 0, 2) and report["num_nodes"] == 2, report
        assert report["steps"] == SYNC_STEPS
        assert report["ref_equals_policy_after_sync_point"] == [s % K == 0 for s in range(SYNC_STEPS)], report
        assert report["lags"] == [t - K * ((t - 1) // K) for t in range(1, SYNC_STEPS)] == [1, 2, 1, 2], report
    if strategy == "ddp":  # full replicas: both nodes hold the same policy (FSDP2 ranks hold different shards)
        assert reports(out)[0]["sync"]["policy_checksum"] == reports(out)[1]["sync"]["policy_checksum"]


def test_kto_kl_estimate_is_reduced_over_both_nodes(first_launch):
    """Each node's own KL rows give a different estimate; both use the mean over the rows of both nodes."""
    _, out = first_launch
    r0, r1 = (r["kto"] for r in reports(out))
    assert r0["local_sum"] / r0["local_count"] != r1["local_sum"] / r1["local_count"]
    expected = (r0["local_sum"] + r1["local_sum"]) / (r0["local_count"] + r1["local_count"])
    for report in (r0, r1):
        assert report["kl_mean"] == pytest.approx(expected, rel=1e-5)
        assert report["loss_kl"] == pytest.approx(max(0.0, expected), rel=1e-5)  # the z0 the loss used


def test_sigterm_to_one_node_stops_both_at_one_step_and_a_new_launch_resumes_bitwise(first_launch):
    """The 2-node run (a checkpoint every 2 steps) gets SIGTERM on node 1 only, during step 3: both nodes stop after
    step 3 (exit status 0), and ``PreemptionCheckpoint`` saves it, atomically (no temporary file left), as
    ``last.ckpt``. A new 2-node launch resumes it (mid-epoch) to step 6, and every rank's policy, reference, AdamW
    moments, LR and sync count equal the uninterrupted run's bitwise (gloo sums the two ranks' gradients in a fixed
    order)."""
    strategy, out = first_launch
    checkpoint = out / "ckpt" / "last.ckpt"
    assert sorted(p.name for p in checkpoint.parent.iterdir()) == [
        "epoch=0-step=2.ckpt",
        "epoch=0-step=3.ckpt",
        "last.ckpt",
    ]
    assert torch.load(checkpoint, map_location="cpu", weights_only=True)["global_step"] == STOP
    launch_nodes("resume", strategy, out)
    for rank in (0, 1):
        straight, resumed = (torch.load(out / f"{run}_rank{rank}.pt") for run in ("straight", "resumed"))
        assert int(resumed["global_step"]) == STEPS and int(resumed["syncs"]) == 3  # steps 0, 2, 4
        for key, value in straight.items():
            assert torch.equal(resumed[key], value), (strategy, rank, key)


def test_slurm_requeue_signal_at_any_moment_stops_both_nodes_at_one_step(tmp_path):
    """A 2-node DDP job under SLURM (faked: ``srun``'s variables, an ``scontrol`` that records its call) gets the
    requeue signal on both nodes at once, as SLURM sends it, wherever each is in its step: both stop after one same
    step, saved once (``last.ckpt`` is that step, no temporary file, no ``hpc_ckpt``), and ``scontrol requeue``
    runs once. (Lightning's own requeue handler, which saves inside the signal handler, hangs here.)"""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text('#!/bin/sh\necho "$*" >> "$(dirname "$0")/scontrol.calls"\n')
    (bin_dir / "scontrol").chmod(0o755)
    poll = signal_both_after_start(tmp_path / "started", signal.SIGUSR1)
    launch_nodes("slurm", "ddp", tmp_path, env=slurm_env(bin_dir), poll=poll, timeout=240)
    assert (bin_dir / "scontrol.calls").read_text() == "requeue 4242\n"
    files = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert len(files) == 2 and files[1] == "last.ckpt" and not list(tmp_path.rglob("hpc_ckpt*")), files
    step = torch.load(tmp_path / "ckpt" / "last.ckpt", map_location="cpu", weights_only=True)["global_step"]
    assert files[0].endswith(f"-step={step}.ckpt") and 2 <= step < 50, files
