"""2 nodes x 1 process through Lightning: two OS processes, each a plain Trainer run with ``num_nodes=2, devices=1``
and its own ``NODE_RANK``, meeting over TCP on 127.0.0.1 (gloo), as two machines would. DDP and FSDP2
(``ModelParallelStrategy``): the humanline sync rule on every rank, KTO's KL estimate over both nodes, and the
checkpoint a 2-node run writes on SIGTERM, which a new 2-node launch resumes to the uninterrupted run's state,
bitwise."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
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


def run_nodes(args: list[str], logs: list[Path], port: int, timeout: float, pause: Path | None) -> list[int | None]:
    """Start node 0 and node 1 and wait for both; once both are held at ``pause`` (``PauseAt``'s marker files), send
    each a SIGTERM, as a scheduler does to every task of a job. Kill what is left on failure or timeout."""
    procs: list[subprocess.Popen] = []
    try:
        for rank, log in enumerate(logs):
            with open(log, "w") as f:
                command = [sys.executable, str(SCRIPT), *args]
                procs.append(subprocess.Popen(command, env=node_env(rank, port), cwd=REPO, stdout=f, stderr=f))
        deadline, signalled = time.monotonic() + timeout, False
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            if pause is not None and not signalled and all(Path(f"{pause}.rank{r}").exists() for r in (0, 1)):
                for p in procs:
                    p.send_signal(signal.SIGTERM)
                signalled = True
            time.sleep(0.1)
        return [p.poll() for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def launch_nodes(mode: str, strategy: str, out: Path, pause: Path | None = None, timeout: float = 300) -> None:
    """``multinode_script.py mode strategy out`` on both nodes (SIGTERM to both once held at ``pause``); a new port
    if the chosen one was taken meanwhile."""
    for attempt in range(3):
        logs = [out / f"{mode}-node{rank}-try{attempt}.log" for rank in (0, 1)]
        codes = run_nodes([mode, strategy, str(out)], logs, free_port(), timeout, pause)
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
    launch_nodes("first", request.param, out, pause=out / "paused")
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


def test_sigterm_on_both_nodes_leaves_a_checkpoint_a_new_launch_resumes_bitwise(first_launch):
    """The 2-node run (a checkpoint every 2 steps) gets SIGTERM on both nodes after step 3: ``CheckpointOnSigterm``
    saves step 3, atomically (no temporary file left), as ``last.ckpt``. A new 2-node launch resumes it (mid-epoch)
    to step 6, and every rank's policy, reference, AdamW moments, LR and sync count equal the uninterrupted run's
    bitwise (gloo sums the two ranks' gradients in a fixed order)."""
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
