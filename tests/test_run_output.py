"""What a run prints: a one-line parameter count (no summary table), no tips or library deprecation warnings, a
progress bar of optimizer steps, the curves drawn after the final held-out score, and a command a pip user can run."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from lightning.pytorch.callbacks import Callback

from hl_lightning.callbacks import StepProgressBar
from hl_lightning.callbacks.progress import parameter_summary
from hl_lightning.modules import DPOModule, SimPOModule
from tests.conftest import make_pair_batches
from tests.helpers import LORA, loader, tiny_dpo, trainer

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> tuple[str, Path]:
    """The installed ``hl-lightning`` fitting the offline smoke config: 2 steps of 2 accumulated batches each.
    Its stdout and stderr together, and its working directory."""
    cwd = tmp_path_factory.mktemp("run")
    script = Path(sys.executable).parent / "hl-lightning"
    args = ["fit", "--config", str(REPO / "configs" / "smoke" / "humanline_dpo.yaml")]
    args += ["--trainer.accumulate_grad_batches=2", "--trainer.logger.init_args.tracking_uri=sqlite:///m.db"]
    out = subprocess.run([str(script), *args], capture_output=True, text=True, cwd=cwd, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.replace("\r", "\n") + "\n" + out.stderr.replace("\r", "\n"), cwd


def test_a_run_shows_a_parameter_line_and_no_summary_table(smoke_run):
    output, _ = smoke_run
    assert "Parameters: 6.4 M, 3.2 M trainable (policy 3.2 M trainable, reference 3.2 M frozen)" in output
    for table in ("Total FLOPs", "Modules in train mode", "Modules in eval mode", "Trainable params", "┏"):
        assert table not in output, table


def test_a_run_shows_no_tips_and_no_library_deprecation_warning(smoke_run):
    output, _ = smoke_run
    for noise in ("litlogger", "litmodels", "Tip:", "LeafSpec", "_pytree"):
        assert noise not in output, noise


def test_the_progress_bar_counts_optimizer_steps_to_max_steps(smoke_run):
    """2 steps of 2 batches: the bar reads 1/2 then 2/2 (Lightning's own counts batches: 3/2, 4/2)."""
    output, _ = smoke_run
    counts = [(int(n), int(total)) for n, total in re.findall(r"^epoch 0: .*?\| (\d+)/(\d+) \[", output, re.M)]
    assert counts and counts[-1] == (2, 2) and all(n <= total == 2 for n, total in counts), counts


def test_the_curves_come_after_the_final_held_out_score(smoke_run):
    output, _ = smoke_run
    assert output.index("Held-out exact match after training") < output.index("Training curves:")


def test_the_final_printout_is_a_command_for_any_directory(smoke_run):
    output, cwd = smoke_run
    run = re.search(r"MLflow run (\w+) in experiment 'hl_lightning'", output)
    assert run is not None, output[-2000:]
    command = f"Open it: mlflow ui --backend-store-uri sqlite:///{cwd}/m.db"
    assert command in output and f"http://127.0.0.1:5000/#/experiments/1/runs/{run.group(1)}" in output
    assert ".venv" not in output


def test_the_parameter_line_counts_each_part_once():
    dpo = tiny_dpo()
    assert parameter_summary(dpo) == (
        "Parameters: 6.4 M, 3.2 M trainable (policy 3.2 M trainable, reference 3.2 M frozen)"
    )
    assert parameter_summary(SimPOModule(model="tiny-random")) == (
        "Parameters: 3.2 M, 3.2 M trainable (policy 3.2 M trainable)"
    )
    lora = DPOModule(model="tiny-random", peft=LORA)  # the reference is an adapter inside the policy: no copy
    assert sum(p.numel() for p in lora.parameters() if p.requires_grad) == 1792
    assert parameter_summary(lora) == "Parameters: 3.2 M, 1.8 K trainable (policy 3.2 M, 1.8 K of it trainable)"


class Bars(Callback):
    """What the progress bar shows at the end of each training batch."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int, int]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        bar = trainer.progress_bar_callback.train_progress_bar
        self.seen.append((bar.desc.rstrip(": "), bar.n, bar.total))


def test_the_bar_counts_steps_across_epochs_and_accumulation(tmp_path):
    """6 batches an epoch, 2 per step, 5 steps: steps 4 and 5 are in epoch 1, and the bar never passes 5."""
    bars = Bars()
    batches = make_pair_batches(6)
    fit = trainer(5, [StepProgressBar(), bars], tmp_path, enable_progress_bar=True, accumulate_grad_batches=2)
    fit.fit(tiny_dpo(), train_dataloaders=loader(batches))
    assert [n for _, n, _ in bars.seen] == [0, 1, 1, 2, 2, 3, 3, 4, 4, 5]
    assert {total for _, _, total in bars.seen} == {5}
    assert [where for where, _, _ in bars.seen] == ["epoch 0"] * 6 + ["epoch 1"] * 4
