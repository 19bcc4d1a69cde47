"""Run by tests/test_ddp.py: 2-process CPU DDP, KTO; each rank reports its local and its reduced KL estimate."""

import json
import sys
from functools import partial

import lightning.pytorch as pl
import torch

torch.set_num_threads(1)

from hl_lightning.data import UnpairedPreferenceDataModule  # noqa: E402
from hl_lightning.models.logprobs import completion_logps  # noqa: E402
from hl_lightning.modules import KTOModule  # noqa: E402
from hl_lightning.objectives import token_log_ratio  # noqa: E402
from tests.helpers import trainer  # noqa: E402


class KLProbe(pl.Callback):
    """On the first batch, record this rank's own KL pair rewards and the module's all-rank estimate."""

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if batch_idx:
            return
        kl = batch.kl
        with torch.no_grad():
            pol = completion_logps(module.policy, kl.input_ids, kl.attention_mask, kl.completion_mask)
            ref = completion_logps(module.ref, kl.input_ids, kl.attention_mask, kl.completion_mask)
            local = token_log_ratio(pol.logps, ref.logps, pol.mask, module.clip).sum(-1)
        _, _, kl_policy, kl_ref = module.item_and_kl_logps(batch)  # what the module computes (shared prompts)
        kl_mean = module.kl_mean(kl_policy, kl_ref).item()
        self.report = {
            "rank": trainer.global_rank,
            "local_sum": local.double().sum().item(),
            "local_count": len(local),
            "kl_mean": kl_mean,
            "kl": max(0.0, kl_mean),
            "loss_kl": module.compute_loss(batch).metrics["kl"].item(),
        }


def main(out_dir: str) -> None:
    module = KTOModule(model="tiny-random", optimizer=partial(torch.optim.AdamW, lr=1e-3))
    with torch.no_grad():
        next(module.policy.parameters()).mul_(1.5)  # the policy differs from the reference from step 0
    data = UnpairedPreferenceDataModule(tokenizer="tiny-random", batch_size=3, max_length=64, max_prompt_length=48)
    probe = KLProbe()
    t = trainer(1, [probe], out_dir, strategy="ddp", devices=2, limit_val_batches=0)
    t.fit(module, datamodule=data)
    with open(f"{out_dir}/kto_rank{t.global_rank}.json", "w") as f:
        json.dump(probe.report, f)


if __name__ == "__main__":
    main(sys.argv[1])
