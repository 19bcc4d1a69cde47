"""Run by tests/test_ddp.py: 2-process CPU DDP (gloo), humanline DPO for 3 steps (``lora``: LoRA with a synced
reference adapter); each rank reports."""

import json
import sys

import torch

torch.set_num_threads(1)

from hl_lightning.callbacks import RefSyncCallback  # noqa: E402
from tests.conftest import make_pair_batches  # noqa: E402
from tests.helpers import LORA, WeightRecorder, loader, tiny_dpo, trainer  # noqa: E402


def main(out_dir: str, lora: bool) -> None:
    recorder = WeightRecorder()  # with LoRA: the trainable and the reference adapters
    module = tiny_dpo(peft=LORA if lora else None, lr=1e-2 if lora else 1e-3)
    t = trainer(3, [RefSyncCallback(every_n_steps=1), recorder], out_dir, strategy="ddp", devices=2)
    t.fit(module, loader(make_pair_batches(6)))
    report = {
        "rank": t.global_rank,
        "world_size": t.world_size,
        "steps": len(recorder.policy),
        "ref_is_previous_policy": [torch.equal(recorder.ref[i], recorder.policy[i - 1]) for i in range(1, 3)],
        "ref_differs_from_policy": [not torch.equal(recorder.ref[i], recorder.policy[i]) for i in range(1, 3)],
        "policy_checksum": float(recorder.policy[-1].double().sum()),
        "ref_checksum": float(recorder.ref[-1].double().sum()),
    }
    with open(f"{out_dir}/{'lora_' if lora else ''}rank{t.global_rank}.json", "w") as f:
        json.dump(report, f)


if __name__ == "__main__":
    main(sys.argv[1], lora=sys.argv[2:] == ["lora"])
