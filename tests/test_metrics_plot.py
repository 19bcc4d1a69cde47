"""Training curves: the EMA by hand, the objective's own metrics by default, the held-out panel, a real PNG."""

import copy
from functools import partial

import pytest
import torch

from hl_lightning.callbacks import HeldOutEval, MetricsPlot
from hl_lightning.callbacks.metrics_plot import ema
from hl_lightning.data import UnpairedPreferenceDataModule
from hl_lightning.modules import DPOModule, GRPOModule, KTOModule
from tests.helpers import trainer


def test_ema_by_hand():
    # s0 = 1; s1 = 0.5 * 1 + 0.5 * 3 = 2; s2 = 0.5 * 2 + 0.5 * 0 = 1
    assert ema([1.0, 3.0, 0.0], 0.5) == [1.0, 2.0, 1.0]
    assert ema([4.0, 2.0], 0.0) == [4.0, 2.0]  # no smoothing
    with pytest.raises(ValueError, match=r"smoothing=1.0\): must be in \[0, 1\)"):
        MetricsPlot(smoothing=1.0)


def test_defaults_are_the_objective_s_own_metrics():
    plot = MetricsPlot()
    assert "rewards/margins" in plot.names(DPOModule) and "kl" not in plot.names(DPOModule)
    assert "kl" in plot.names(KTOModule) and "rewards/margins" not in plot.names(KTOModule)
    assert "clip_ratio" in plot.names(GRPOModule)
    assert MetricsPlot(metrics=["loss"]).names(KTOModule) == ["loss"]


def test_kto_run_plots_its_metrics_and_the_held_out_score(tmp_path):
    module = KTOModule(model="tiny-random", optimizer=partial(torch.optim.AdamW, lr=1e-3))
    data = UnpairedPreferenceDataModule(tokenizer="tiny-random", batch_size=2, max_length=64, max_prompt_length=48)
    plot = MetricsPlot()
    heldout = HeldOutEval(max_new_tokens=2, limit=2)
    trainer(3, [plot, heldout], tmp_path, limit_val_batches=0).fit(module, datamodule=data)
    assert [step for step, _ in plot.history["kl"]] == [1, 2, 3]
    panels = [name for name, _, _ in plot._panels(trainer(1, [plot, heldout], tmp_path), module)]
    assert panels[:2] == ["loss", "kl"] and panels[-1] == "held-out exact match"
    assert set(panels[:-1]) <= set(KTOModule.plot_metrics) and "rewards/margins" not in panels
    png = tmp_path / "training_curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_the_picture_has_the_final_held_out_score_whatever_the_callback_order(tmp_path, monkeypatch):
    """MetricsPlot listed before HeldOutEval (whose final score comes in on_fit_end) still draws that score."""
    module = KTOModule(model="tiny-random", optimizer=partial(torch.optim.AdamW, lr=1e-3))
    data = UnpairedPreferenceDataModule(tokenizer="tiny-random", batch_size=2, max_length=64, max_prompt_length=48)
    plot, heldout = MetricsPlot(), HeldOutEval(max_new_tokens=2, limit=2)
    drawn: list = []  # a copy of the panels at the moment they are drawn
    panels = MetricsPlot._panels
    monkeypatch.setattr(
        MetricsPlot, "_panels", lambda self, *a: drawn.append(copy.deepcopy(panels(self, *a))) or drawn[-1]
    )
    trainer(2, [plot, heldout], tmp_path, limit_val_batches=0).fit(module, datamodule=data)
    (held_out,) = [points for name, points, _ in drawn[-1] if name == "held-out exact match"]
    assert [step for step, _ in held_out] == [0, 2] and len(drawn) == 1
