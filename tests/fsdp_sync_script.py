"""Run by tests/test_ddp.py: 2-process FSDP2 on CPU (ModelParallelStrategy, gloo), humanline DPO, 3 steps."""

import json
import sys

import lightning.pytorch as pl
import torch
from lightning.pytorch.strategies import ModelParallelStrategy

torch.set_num_threads(1)

from hl_lightning.callbacks import RefSyncCallback  # noqa: E402
from tests.conftest import make_pair_batches  # noqa: E402
from tests.helpers import LORA, WeightRecorder, loader, tiny_dpo, trainer  # noqa: E402


def local_flat(module: torch.nn.Module, part: str = "") -> torch.Tensor:
    """This rank's shards of every parameter (whose name contains ``part``), as one vector."""
    return torch.cat(
        [getattr(p, "_local_tensor", p).detach().flatten().clone() for n, p in module.named_parameters() if part in n]
    )


class ShardRecorder(WeightRecorder):
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if pl_module.adapters is None:
            self.policy.append(local_flat(pl_module.policy))
            self.ref.append(local_flat(pl_module.ref))
        else:  # LoRA: the trainable and the reference adapters
            self.policy.append(local_flat(pl_module.policy, ".default."))
            self.ref.append(local_flat(pl_module.policy, ".reference."))


class ForwardAfterSync(pl.Callback):
    """At the end of training, sync once more and run policy and reference on the same rows: the reference's
    forward must see the synced weights in every unit (a unit kept gathered from an earlier forward would not)."""

    def __init__(self, batch) -> None:
        self.rows, self.equal = batch.rows(), None

    @torch.no_grad()
    def on_train_end(self, trainer, pl_module) -> None:
        pl_module.sync_reference()
        policy = pl_module.forward_logps(pl_module.policy, self.rows).logps
        self.equal = torch.allclose(policy, pl_module.ref_logps(self.rows).logps, rtol=1e-6, atol=1e-6)
        pl_module.policy.reshard()  # a no_grad forward leaves the policy's root gathered


def main(out_dir: str, lora: bool) -> None:
    recorder, after = ShardRecorder(), ForwardAfterSync(make_pair_batches(1)[0])
    module = tiny_dpo(peft=LORA if lora else None, lr=1e-2 if lora else 1e-3)
    strategy = ModelParallelStrategy(data_parallel_size=2, tensor_parallel_size=1)
    t = trainer(3, [RefSyncCallback(every_n_steps=1), recorder, after], out_dir, strategy=strategy, devices=2)
    t.fit(module, loader(make_pair_batches(6)))
    report = {
        "sharded": type(next(module.policy.parameters())).__name__,
        "steps": len(recorder.policy),
        "ref_is_previous_policy": [torch.equal(recorder.ref[i], recorder.policy[i - 1]) for i in range(1, 3)],
        "ref_differs_from_policy": [not torch.equal(recorder.ref[i], recorder.policy[i]) for i in range(1, 3)],
        "ref_forward_equals_policy_after_sync": after.equal,
    }
    with open(f"{out_dir}/fsdp_{'lora_' if lora else ''}rank{t.global_rank}.json", "w") as f:
        json.dump(report, f)


if __name__ == "__main__":
    main(sys.argv[1], lora=sys.argv[2:] == ["lora"])
