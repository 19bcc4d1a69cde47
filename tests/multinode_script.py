"""Run by tests/test_multinode.py once per node: Lightning fits on 2 nodes x 1 process (CPU, gloo), the node's rank
and the rendezvous from ``NODE_RANK``, ``MASTER_ADDR``, ``MASTER_PORT`` and ``WORLD_SIZE`` (Lightning's default
``LightningEnvironment``, as on a cluster without a scheduler).

``first STRATEGY OUT``: the sync rule (k = 2, 5 steps), KTO's KL estimate, an uninterrupted 6-step run, and the same
run checkpointing every 2 steps, rank 1 held before step 3 until the test's SIGTERM reaches it (only it):
``PreemptionCheckpoint`` stops both ranks after step 3 and saves it; ``resume STRATEGY OUT``: a fresh launch that
resumes ``last.ckpt`` to step 6; ``slurm STRATEGY OUT``: SLURM's variables instead, a 200-step run that the test's
requeue signal stops. STRATEGY
is ``ddp`` or ``fsdp`` (FSDP2 through ``ModelParallelStrategy``, full-state checkpoints written by rank 0). Each rank
writes JSON reports and its weights (``.pt``) under OUT."""

import json
import sys
from functools import partial
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.strategies import ModelParallelStrategy

torch.set_num_threads(1)

from hl_lightning.callbacks import PreemptionCheckpoint, RefSyncCallback  # noqa: E402
from hl_lightning.checkpointing import AtomicCheckpointIO  # noqa: E402
from hl_lightning.data import PreferenceDataModule, UnpairedPreferenceDataModule  # noqa: E402
from hl_lightning.modules import DPOModule, KTOModule  # noqa: E402
from hl_lightning.objectives import ClipLogRatio  # noqa: E402
from tests.conftest import make_pair_batches  # noqa: E402
from tests.ddp_kto_script import KLProbe  # noqa: E402
from tests.helpers import loader, tiny_dpo, trainer  # noqa: E402
from tests.signal_callback import PauseAt  # noqa: E402
from tests.test_multinode import STEPS, STOP, SYNC_STEPS, K  # noqa: E402


def local(t: torch.Tensor) -> torch.Tensor:
    """This rank's part of a tensor: its shard of a DTensor (FSDP2), else the tensor."""
    return getattr(t, "_local_tensor", t).detach().flatten().clone()


def weights(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([local(p) for p in model.parameters()])


def node_trainer(strategy: str, max_steps: int, callbacks: list, root, **kwargs) -> pl.Trainer:
    """A quiet CPU trainer on 2 nodes of 1 process, with the CLI's atomic checkpoint writes."""
    chosen = "ddp"
    if strategy == "fsdp":
        chosen = ModelParallelStrategy(data_parallel_size=2, tensor_parallel_size=1, save_distributed_checkpoint=False)
    t = trainer(max_steps, callbacks, root, strategy=chosen, num_nodes=2, devices=1, **kwargs)
    t.strategy.checkpoint_io = AtomicCheckpointIO()
    return t


class SyncRecorder(pl.Callback):
    """This rank's policy and reference at the start of each step, and right after the step's sync point (placed
    after ``RefSyncCallback``, so its ``on_before_optimizer_step`` runs after the sync)."""

    def __init__(self) -> None:
        self.start: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.after_sync_point: list[bool] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.start.append((weights(pl_module.policy), weights(pl_module.ref)))

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.after_sync_point.append(torch.equal(weights(pl_module.policy), weights(pl_module.ref)))

    def lags(self) -> list[int | None]:
        """Per step t >= 1: t - s for the latest step s whose starting policy equals the reference at t (None if
        the reference equals no earlier policy)."""
        found = []
        for t in range(1, len(self.start)):
            same = [s for s in range(t + 1) if torch.equal(self.start[t][1], self.start[s][0])]
            found.append(t - same[-1] if same else None)
        return found


def check_sync(strategy: str, out: Path) -> dict:
    recorder = SyncRecorder()
    t = node_trainer(strategy, SYNC_STEPS, [RefSyncCallback(every_n_steps=K), recorder], out / "sync")
    module = tiny_dpo()
    t.fit(module, loader(make_pair_batches(2 * SYNC_STEPS)))
    return {
        "global_rank": t.global_rank,
        "node_rank": t.node_rank,
        "local_rank": t.local_rank,
        "world_size": t.world_size,
        "num_nodes": t.num_nodes,
        "steps": len(recorder.start),
        "lags": recorder.lags(),
        "ref_equals_policy_after_sync_point": recorder.after_sync_point,
        "policy_checksum": float(weights(module.policy).double().sum()),
    }


def check_kto(strategy: str, out: Path) -> dict:
    module = KTOModule(model="tiny-random", optimizer=partial(torch.optim.AdamW, lr=1e-3))
    with torch.no_grad():
        next(module.policy.parameters()).mul_(1.5)  # the policy differs from the reference from step 0
    data = UnpairedPreferenceDataModule(tokenizer="tiny-random", batch_size=3, max_length=64, max_prompt_length=48)
    probe = KLProbe()
    node_trainer(strategy, 1, [probe], out / "kto", limit_val_batches=0).fit(module, datamodule=data)
    return probe.report


def resumable_fit(strategy: str, root: Path, max_steps: int, ckpt_path=None, callbacks=()) -> dict:
    """Humanline DPO (k = 2, LR schedule) on the shipped sample pairs, sharded over both nodes; this rank's end
    state: weights, AdamW moments, step, sync count."""
    torch.manual_seed(0)
    module = DPOModule(
        model="tiny-random",
        clip=ClipLogRatio(),
        optimizer=partial(torch.optim.AdamW, lr=1e-3),
        lr_scheduler=partial(torch.optim.lr_scheduler.LinearLR, start_factor=0.1, total_iters=4),
    )
    data = PreferenceDataModule(tokenizer="tiny-random", batch_size=2, max_length=64, max_prompt_length=48)
    sync = RefSyncCallback(every_n_steps=K)
    t = node_trainer(
        strategy,
        max_steps,
        [sync, *callbacks],
        root,
        limit_train_batches=4,  # 4 batches per rank and epoch: the stop at step 3 is mid-epoch
        limit_val_batches=0,
        enable_checkpointing=bool(callbacks),
    )
    t.fit(module, datamodule=data, ckpt_path=ckpt_path)
    moments = list(t.optimizers[0].state.values())
    return {
        "policy": weights(module.policy),
        "ref": weights(module.ref),
        "exp_avg": torch.cat([local(s["exp_avg"]) for s in moments]),
        "exp_avg_sq": torch.cat([local(s["exp_avg_sq"]) for s in moments]),
        "lr": torch.tensor([g["lr"] for g in t.optimizers[0].param_groups]),
        "global_step": torch.tensor(t.global_step),
        "syncs": torch.tensor(sync.syncs),
    }


def first(strategy: str, out: Path) -> None:
    report = {"sync": check_sync(strategy, out), "kto": check_kto(strategy, out)}
    rank = report["sync"]["global_rank"]
    (out / f"report_rank{rank}.json").write_text(json.dumps(report))
    torch.save(resumable_fit(strategy, out / "straight", STEPS), out / f"straight_rank{rank}.pt")
    every_2 = ModelCheckpoint(dirpath=out / "ckpt", every_n_train_steps=2, save_last=True)
    stop = [every_2, PreemptionCheckpoint(), PauseAt(STOP, str(out / "paused"), rank=1)]
    resumable_fit(strategy, out / "stopped", STEPS, callbacks=stop)  # the test's SIGTERM to rank 1 stops it at STOP


def slurm(strategy: str, out: Path) -> None:
    """Under SLURM (the test sets its variables): a long run that the test's requeue signal stops."""
    every_50 = ModelCheckpoint(dirpath=out / "ckpt", every_n_train_steps=50, save_last=True)
    started = PauseAt(2, str(out / "started"), timeout=0.0)  # only marks that step 2 began
    resumable_fit(strategy, out / "slurm", 200, callbacks=[every_50, PreemptionCheckpoint(), started])


def resume(strategy: str, out: Path) -> None:
    end = resumable_fit(strategy, out / "resumed", STEPS, ckpt_path=out / "ckpt" / "last.ckpt")
    torch.save(end, out / f"resumed_rank{torch.distributed.get_rank()}.pt")


if __name__ == "__main__":
    {"first": first, "resume": resume, "slurm": slurm}[sys.argv[1]](sys.argv[2], Path(sys.argv[3]))
