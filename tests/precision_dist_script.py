"""Run by tests/test_precision.py: humanline DPO in ``bf16-mixed`` on 2 CPU processes (gloo), 3 steps, under DDP
(``ddp``: prompts shared, the plain path forbidden) or FSDP2 (``fsdp``: ModelParallelStrategy, which runs the plain
path by design); each rank reports what the test checks."""

import json
import math
import sys

import lightning.pytorch as pl
import torch
from lightning.pytorch.strategies import ModelParallelStrategy

torch.set_num_threads(1)

from hl_lightning.callbacks import RefSyncCallback  # noqa: E402
from tests.fsdp_sync_script import ShardRecorder  # noqa: E402
from tests.helpers import WeightRecorder, loader, tiny_dpo, trainer  # noqa: E402
from tests.perf.test_exact_speedups import pair_batch  # noqa: E402


def autocast_state() -> str:
    """The CPU autocast dtype in force, or "off"."""
    return str(torch.get_autocast_dtype("cpu")) if torch.is_autocast_enabled("cpu") else "off"


class StepMetrics(pl.Callback):
    """The loss and the mean |log-ratio| (None without a reference) of every training step; the autocast state the
    first decoder layer of the policy and of the reference (a full copy) ran under in training; the dtype of every
    output of the policy's LM head module."""

    def __init__(self) -> None:
        self.loss: list[float] = []
        self.abs_log_ratio: list[float | None] = []
        self.autocast: dict[str, set[str]] = {"policy": set(), "reference": set()}
        self.head_dtypes: set[str] = set()
        self.in_step = False  # between a training batch's start and end: not rollouts, validation or evaluation

    def setup(self, trainer, pl_module, stage) -> None:
        for name, model in (("policy", pl_module.policy), ("reference", pl_module.ref)):
            if model is not None:
                model.get_decoder().layers[0].register_forward_pre_hook(self._autocast_hook(name))
        pl_module.policy.get_output_embeddings().register_forward_hook(self._head_hook)

    def _autocast_hook(self, name: str):
        def hook(module, args) -> None:
            if self.in_step:
                self.autocast[name].add(autocast_state())

        return hook

    def _head_hook(self, module, args, out) -> None:
        if self.in_step:
            self.head_dtypes.add(str(out.dtype))

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.in_step = True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.in_step = False
        self.loss.append(float(trainer.callback_metrics["loss"]))
        ratio = trainer.callback_metrics.get("humanline/abs_log_ratio")
        self.abs_log_ratio.append(None if ratio is None else float(ratio))


def forbid_plain_path() -> None:
    """Make the shared-prefix path fail loudly if it fell back to the plain one."""

    def refuse(*args, **kwargs):
        raise AssertionError("shared_prefix_logps fell back to the plain path")

    import hl_lightning.models.shared_prefix as shared_prefix

    shared_prefix.completion_logps = refuse


def main(out_dir: str, kind: str) -> None:
    fsdp = kind == "fsdp"
    if not fsdp:
        forbid_plain_path()
    recorder, metrics = (ShardRecorder() if fsdp else WeightRecorder()), StepMetrics()
    module = tiny_dpo(lr=1e-3, share_prompt=True)
    strategy = ModelParallelStrategy(data_parallel_size=2, tensor_parallel_size=1) if fsdp else "ddp"
    callbacks = [RefSyncCallback(every_n_steps=1), recorder, metrics]
    t = trainer(3, callbacks, out_dir, strategy=strategy, devices=2, precision="bf16-mixed")
    t.fit(module, loader([pair_batch(seed=b) for b in range(6)]))
    report = {
        "world_size": t.world_size,
        "sharded": type(next(module.policy.parameters())).__name__,
        "autocast": {name: sorted(seen) for name, seen in metrics.autocast.items()},
        "head_dtypes": sorted(metrics.head_dtypes),
        "losses_finite": all(math.isfinite(v) for v in metrics.loss) and len(metrics.loss) == 3,
        "abs_log_ratio": metrics.abs_log_ratio,
        "ref_is_previous_policy": [torch.equal(recorder.ref[i], recorder.policy[i - 1]) for i in range(1, 3)],
        "policy_checksum": float(recorder.policy[-1].double().sum()),
    }
    with open(f"{out_dir}/precision_{kind}_rank{t.global_rank}.json", "w") as f:
        json.dump(report, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
