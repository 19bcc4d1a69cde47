"""Lightning precisions on every path: ``bf16-mixed``, ``16-mixed``, ``bf16-true`` (and ``32-true``) for DPO, IPO,
SimPO, KTO and GRPO, offline and online, full and LoRA, ``share_prompt`` on and off, lean activations, the chunked
LM head, activation checkpointing, DDP and FSDP2.

Per-token log-probs and log-ratios are fp32 in every mode: the LM head and the log-softmax run with autocast off on
fp32 copies (``hl_lightning.models.head``), and the reference runs under the policy's autocast, so at step 0 (the
reference equal to the policy) every log-ratio is exactly 0.

Lightning replaces ``precision="16-mixed"`` by ``bf16-mixed`` on a CPU; torch's CPU autocast runs float16, so these
tests pass Lightning's own ``MixedPrecision("16-mixed", "cpu")`` plugin (autocast and a gradient scaler) instead.

Error model of the tolerances (:func:`tolerance`). A mode rounds the two operands of every matrix product to a
p-bit significand (bf16: p = 8, fp16: p = 11), so each carries a relative error uniform in [-u, u], u = 2^-p
(round to nearest), of standard deviation u / sqrt(3); products accumulate in fp32, and the head and the
log-softmax are fp32, so these roundings are the only errors. One product adds an independent relative error of
standard deviation u * sqrt(2/3) to its output (the errors of its n terms average out: a sum of n terms of random
sign is of size sqrt(n) times a term, as is its error), and along a chain of D products they add in quadrature:
sigma = u * sqrt(2 D / 3). In the tiny Llama (2 layers) the deepest forward chain per layer is q/k -> scores ->
probs @ V -> o_proj -> gate/up -> down, 5 products: D = 10 for the loss. A weight's gradient multiplies the forward
chain's values by the backward chain, whose every product is again two rounded operands: D = 3 * 10 = 30 for the
gradients. ``bf16-true`` also stores every weight and every activation between the products in bf16 (norms, residual
sums, the SwiGLU product): twice the roundings, sigma * sqrt(2). The tolerance is sigma itself, compared with the
relative error of the loss and the relative L2 error of the whole gradient vector; the errors measured are about a
third of it (the first-order model overcounts: rounding errors partly cancel along a chain).
"""

from __future__ import annotations

import contextlib
import json
import math
from functools import partial
from pathlib import Path

import pytest
import torch
import yaml
from lightning.pytorch.plugins import HalfPrecision, MixedPrecision

from hl_lightning.callbacks import RefSyncCallback
from hl_lightning.cli import build_cli
from hl_lightning.data.groups import collate_groups
from hl_lightning.data.unpaired import collate_unpaired
from hl_lightning.models.head import chunk_tokens, linear_selected_logps
from hl_lightning.models.logprobs import TokenLogps, fp32_head
from hl_lightning.modules import DPOModule, GRPOModule, IPOModule, KTOModule, SimPOModule, base
from hl_lightning.objectives import ClipLogRatio
from tests.helpers import LORA, loader, policy_flat, reference_flat, trainer
from tests.perf.test_exact_speedups import PAD, ids, pair_batch
from tests.perf.test_shared_prompt_modules import forbid_plain_path, group_items
from tests.precision_dist_script import StepMetrics
from tests.test_ddp import launch

MODES = {
    "bf16-mixed": lambda: MixedPrecision("bf16-mixed", "cpu"),
    "16-mixed": lambda: MixedPrecision("16-mixed", "cpu"),
    "bf16-true": lambda: HalfPrecision("bf16-true"),
}
BITS = {"bf16-mixed": 8, "16-mixed": 11, "bf16-true": 8}  # significand bits (implicit bit included)
CHAIN = {"loss": 10, "grad": 30}  # rounded products along the deepest chain of the tiny Llama (module docstring)


def tolerance(mode: str, quantity: str) -> float:
    """sigma = u * sqrt(2 D / 3), times sqrt(2) for ``bf16-true`` (see the module docstring): for the gradients
    1.75e-2 in bf16-mixed, 2.47e-2 in bf16-true, 2.18e-3 in 16-mixed; for the loss 1.01e-2, 1.43e-2, 1.26e-3."""
    sigma = 2.0 ** -BITS[mode] * math.sqrt(2 * CHAIN[quantity] / 3)
    return sigma * (math.sqrt(2) if mode.endswith("true") else 1.0)


@pytest.fixture
def chunked_head(monkeypatch):
    """The LM head runs in chunks of 3 tokens (the chunked autograd Function; elsewhere the tiny batches of these
    tests run it in one piece)."""
    monkeypatch.setattr("hl_lightning.models.head.CHUNK_BYTES", 4 * 49152 * 3)


def kto_batch():
    g = torch.Generator().manual_seed(5)
    items = [
        {"prompt_ids": ids(g, p), "completion_ids": ids(g, c), "desirable": d, "index": i}
        for i, (p, c, d) in enumerate([(6, 3, True), (9, 5, False), (3, 2, True), (12, 4, False)])
    ]
    return collate_unpaired(items, pad_id=PAD, max_length=64)


OBJECTIVES = {
    "dpo": (DPOModule, pair_batch, {"clip": ClipLogRatio()}),
    "ipo": (IPOModule, pair_batch, {"clip": ClipLogRatio()}),
    "simpo": (SimPOModule, pair_batch, {}),
    "kto": (KTOModule, kto_batch, {"clip": ClipLogRatio()}),
    "grpo": (GRPOModule, lambda: collate_groups(group_items(group_sizes=(4, 4)), pad_id=PAD), {"kl_beta": 0.05}),
}


def build(objective: str, **kwargs):
    """The objective's module on the tiny Llama with its policy moved off the reference (non-zero log-ratios, the
    clip bites), and a batch whose rows share their prompts."""
    cls, batch, options = OBJECTIVES[objective]
    torch.manual_seed(0)  # LoRA's initial A
    module = cls(model="tiny-random", **options, **kwargs)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in module.policy.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=g))
    return module, batch()


def loss_and_grads(module, batch, plugin=None) -> tuple[torch.Tensor, torch.Tensor]:
    """``compute_loss`` in the plugin's forward context (as Lightning runs ``training_step``), backward outside it;
    the loss and every policy gradient as one fp32 vector."""
    if plugin is not None:
        module, batch = plugin.convert_module(module), plugin.convert_input(batch)
    with plugin.forward_context() if plugin is not None else contextlib.nullcontext():
        out = module.compute_loss(batch)
    assert out.loss.dtype == torch.float32
    out.loss.backward()
    grads = [p.grad.float().flatten() for p in module.policy.parameters() if p.grad is not None]
    return out.loss.detach(), torch.cat(grads)


_FP32: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}


@pytest.mark.usefixtures("chunked_head")
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("objective", OBJECTIVES)
def test_loss_and_gradients_match_fp32_within_the_modes_tolerance(objective, mode, monkeypatch):
    """Shared prompts (the plain path forbidden), lean activations, chunked head: the loss and the gradients of the
    mode are those of fp32 within the tolerance derived for the mode, and differ from them (the mode ran)."""
    forbid_plain_path(monkeypatch)
    if objective not in _FP32:
        _FP32[objective] = loss_and_grads(*build(objective))
    loss32, grads32 = _FP32[objective]
    loss, grads = loss_and_grads(*build(objective), plugin=MODES[mode]())
    assert grads32.abs().sum() > 0
    assert abs(float(loss - loss32)) <= tolerance(mode, "loss") * abs(float(loss32))
    assert float((grads - grads32).norm()) <= tolerance(mode, "grad") * float(grads32.norm())
    assert not torch.equal(grads, grads32)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("chunk", [None, 3], ids=["one-piece", "chunked"])
def test_lm_head_is_fp32_under_autocast(dtype, chunk):
    """The selected-token log-probs under autocast, and their gradients (backward outside it, as Lightning runs it),
    are exactly those computed without autocast: the head and the log-softmax never run in bf16 / fp16."""
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(7, 16, generator=g, requires_grad=True)
    weight = torch.randn(50, 16, generator=g, requires_grad=True)
    bias = torch.randn(50, generator=g, requires_grad=True)
    targets = torch.randint(0, 50, (7,), generator=g)

    def run(enabled: bool):
        with torch.autocast("cpu", dtype=dtype, enabled=enabled):
            logps = linear_selected_logps(hidden, weight, bias, targets, chunk=chunk)
        return logps, torch.autograd.grad((logps * torch.arange(7.0)).sum(), (hidden, weight, bias))

    (plain, plain_grads), (cast, cast_grads) = run(False), run(True)
    assert cast.dtype == torch.float32 and torch.equal(cast, plain)
    for a, b in zip(cast_grads, plain_grads, strict=True):
        assert a.dtype == torch.float32 and torch.equal(a, b)


def test_full_forward_logits_are_fp32_under_autocast(tiny_model):
    """``fp32_head`` (the FSDP2 path runs the model's full forward): under bf16 autocast the logits are fp32 and
    equal the head applied in fp32 to the decoder's states; the head's own forward is back afterwards."""
    rows = pair_batch().rows()
    inputs = {"input_ids": rows.input_ids, "attention_mask": rows.attention_mask}
    head = tiny_model.get_output_embeddings()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        hidden = tiny_model.get_decoder()(**inputs).last_hidden_state
        with fp32_head(tiny_model):
            logits = tiny_model(**inputs).logits
        assert tiny_model(**inputs).logits.dtype == torch.bfloat16  # outside: the plain autocast head
    assert "forward" not in vars(head)
    assert logits.dtype == torch.float32
    torch.testing.assert_close(logits, hidden.float() @ head.weight.float().T, rtol=1e-6, atol=1e-6)


SMOKE = Path(__file__).resolve().parents[1] / "configs" / "smoke"
SCALER = {"class_path": "torch.amp.GradScaler", "init_args": {"device": "cpu", "init_scale": 256.0}}
FP16_PLUGIN = {
    "class_path": "lightning.pytorch.plugins.MixedPrecision",
    "init_args": {"precision": "16-mixed", "device": "cpu", "scaler": SCALER},
}
AUTOCAST = {"32-true": "off", "bf16-mixed": "torch.bfloat16", "16-mixed": "torch.float16", "bf16-true": "off"}
OFFLINE = ["humanline_dpo", "humanline_ipo", "simpo", "humanline_kto", "humanline_grpo"]
ROTATION = ["bf16-mixed", "16-mixed", "bf16-true"]
FITS = [
    *[(config, mode, {}) for config in OFFLINE for mode in MODES],
    *[(config, ROTATION[i % 3], {"share_prompt": False}) for i, config in enumerate(OFFLINE)],
    *[("lora_humanline_dpo", mode, {}) for mode in MODES],
    *[(f"online_humanline_{name}", mode, {}) for name, mode in zip(("dpo", "kto", "grpo"), MODES, strict=True)],
    *[("online_lora_humanline_grpo", mode, {}) for mode in MODES],
    ("humanline_dpo", "bf16-mixed", {"gradient_checkpointing": True}),
    ("humanline_dpo", "32-true", {}),
]


def fit_args(tmp_path: Path, config: str, mode: str, model_args: dict) -> list[str]:
    """``hl-lightning fit`` arguments: a layer that extends the smoke config (lr 1e-3, so that bf16 weights move;
    no logger, no plot), and ``--trainer.precision`` (16-mixed: Lightning's plugin, see the module docstring)."""
    trainer = {
        "logger": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "callbacks": [{"class_path": c, "remove": True} for c in ("MetricsPlot", "StepProgressBar")],
    }
    if mode == "16-mixed":
        trainer["plugins"] = FP16_PLUGIN
    model = {"init_args": {"optimizer": {"init_args": {"lr": 1.0e-3}}, **model_args}}
    layer = tmp_path / "layer.yaml"
    layer.write_text(yaml.safe_dump({"extends": [str(SMOKE / f"{config}.yaml")], "trainer": trainer, "model": model}))
    return ["--config", str(layer), *([] if mode == "16-mixed" else [f"--trainer.precision={mode}"])]


def fit_id(fit: tuple[str, str, dict]) -> str:
    config, mode, model_args = fit
    return "-".join([config, mode, *(f"{k}={v}" for k, v in model_args.items())])


def count_shared_prefix_calls(monkeypatch) -> list[int]:
    """A list that grows by one at each call of the shared-prefix path by a module."""
    calls: list[int] = []
    shared = base.shared_prefix_logps

    def counted(*args, **kwargs):
        calls.append(1)
        return shared(*args, **kwargs)

    monkeypatch.setattr(base, "shared_prefix_logps", counted)
    return calls


@pytest.mark.parametrize(("config", "mode", "model_args"), FITS, ids=[fit_id(fit) for fit in FITS])
def test_cli_fit_runs_two_steps(config, mode, model_args, tmp_path, monkeypatch):
    """A 2-step fit of the smoke config in the mode: finite losses, the policy moved, the decoder ran under the
    mode's autocast (the reference under the policy's), every log-ratio of step 0 (reference = policy) is exactly 0
    and step 1's are not (the one-step lag shows). With share_prompt on the shared-prefix path runs (its fallback to
    the plain path forbidden), with it off it never runs."""
    monkeypatch.chdir(tmp_path)
    share = model_args.get("share_prompt", True)
    if share:
        forbid_plain_path(monkeypatch)
    shared_calls = count_shared_prefix_calls(monkeypatch)
    cli = build_cli(fit_args(tmp_path, config, mode, model_args), run=False)
    metrics = StepMetrics()
    cli.trainer.callbacks.append(metrics)
    before = policy_flat(cli.model)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    after = policy_flat(cli.model)
    assert cli.trainer.global_step == 2 and all(math.isfinite(v) for v in metrics.loss)
    assert (len(shared_calls) >= 2) if share else not shared_calls
    assert not torch.equal(after, before.to(after.dtype))
    assert metrics.autocast["policy"] == {AUTOCAST[mode]}
    assert metrics.autocast["reference"] == (set() if cli.model.ref is None else {AUTOCAST[mode]})
    if config != "simpo":
        assert metrics.abs_log_ratio[0] == 0.0 and metrics.abs_log_ratio[1] > 0


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "foreach"])
def test_16_mixed_overflow_is_a_skipped_step(fused, tmp_path):
    """16-mixed with a gradient scale so large that the fp16 gradients overflow: both steps are skipped by the
    guard and by the scaler together (no update, no sync, the scale halved twice), with AdamW unscaling inside its
    fused step or before it; the fit ends normally."""
    module = DPOModule(model="tiny-random", clip=ClipLogRatio(), optimizer=partial(torch.optim.AdamW, fused=fused))
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**40)
    plugin = MixedPrecision("16-mixed", "cpu", scaler=scaler)
    before, ref_before = policy_flat(module), reference_flat(module)
    trainer(2, [RefSyncCallback()], tmp_path, plugins=[plugin]).fit(module, loader([pair_batch(), pair_batch(seed=1)]))
    assert module.skipped_steps == 2 and scaler.get_scale() == 2.0**38
    assert torch.equal(policy_flat(module), before) and torch.equal(reference_flat(module), ref_before)


@pytest.mark.usefixtures("chunked_head")
@pytest.mark.parametrize(("objective", "peft"), [("dpo", None), ("dpo", LORA), ("kto", None), ("grpo", None)])
def test_gradient_checkpointing_with_every_shortcut_changes_nothing(objective, peft, monkeypatch):
    """``gradient_checkpointing`` with shared prompts (the plain path forbidden), lean activations and the chunked
    head, in fp32: the loss and every gradient equal those without it within 1e-6 relative, and the decoder layers
    really were recomputed in the backward (the lean MLP of layer 0 ran twice with gradients on)."""
    forbid_plain_path(monkeypatch)
    assert chunk_tokens(49152) == 3

    def run(checkpointing: bool) -> tuple[torch.Tensor, torch.Tensor, int]:
        module, batch = build(objective, gradient_checkpointing=checkpointing, peft=peft)
        mlp = module.policy.get_decoder().layers[0].mlp
        assert type(mlp).__name__.startswith("Lean")
        calls: list[int] = []
        mlp.register_forward_pre_hook(lambda module, args: calls.append(1) if torch.is_grad_enabled() else None)
        return *loss_and_grads(module, batch), len(calls)

    (loss, grads, calls), (plain_loss, plain_grads, plain_calls) = run(True), run(False)
    assert (calls, plain_calls) == (2, 1)
    assert abs(float(loss - plain_loss)) <= 1e-6 * abs(float(plain_loss))
    assert float((grads - plain_grads).norm()) <= 1e-6 * float(plain_grads.norm()) and plain_grads.norm() > 0


@pytest.mark.parametrize("kind", ["ddp", "fsdp"])
def test_bf16_mixed_on_two_processes(kind, tmp_path):
    """bf16-mixed humanline DPO, 3 steps on 2 CPU processes (tests/precision_dist_script.py), DDP with shared
    prompts (the plain path forbidden) or FSDP2 (its full forward, the LM head module in fp32): on both ranks the
    policy and the reference decoders ran under bf16 autocast, the losses are finite, step 0's log-ratios are
    exactly 0 and later ones are not, the reference follows the sync rule; DDP ranks agree on the policy."""
    launch("precision_dist_script.py", tmp_path, kind)
    reports = [json.loads((tmp_path / f"precision_{kind}_rank{r}.json").read_text()) for r in (0, 1)]
    for report in reports:
        assert report["world_size"] == 2 and report["losses_finite"], report
        assert report["sharded"] == ("DTensor" if kind == "fsdp" else "Parameter")
        assert report["autocast"] == {"policy": ["torch.bfloat16"], "reference": ["torch.bfloat16"]}
        assert report["head_dtypes"] == (["torch.float32"] if kind == "fsdp" else [])  # DDP: the head's weights only
        assert report["abs_log_ratio"][0] == 0.0 and all(v > 0 for v in report["abs_log_ratio"][1:]), report
        assert all(report["ref_is_previous_policy"]), report
    if kind == "ddp":
        assert reports[0]["policy_checksum"] == reports[1]["policy_checksum"]


@pytest.mark.parametrize("mode", ["bf16-mixed", "16-mixed"])
def test_shared_prefix_mask_is_built_in_the_autocast_dtype(mode, monkeypatch):
    """Under mixed precision the shared-prefix attention mask is built once in the dtype attention computes in
    (autocast's), not in fp32 that every layer would convert again."""
    forbid_plain_path(monkeypatch)
    module, batch = build("dpo")
    seen: list[torch.dtype] = []
    decoder = module.policy.get_decoder()
    decoder.register_forward_pre_hook(
        lambda m, args, kwargs: seen.append(kwargs["attention_mask"].dtype), with_kwargs=True
    )
    with MODES[mode]().forward_context():
        module.forward_logps(module.policy, batch.rows())
    assert seen == [torch.bfloat16 if mode == "bf16-mixed" else torch.float16]


def test_cached_reference_logps_stay_fp32_in_bf16_true():
    """bf16-true makes bf16 the default dtype inside a step: cached reference log-probs are still served in fp32,
    exactly as stored (a log-prob near -10 rounded to bf16 would move by up to 0.03, more than a lagged log-ratio)."""
    plugin = HalfPrecision("bf16-true")
    module = plugin.convert_module(DPOModule(model="tiny-random", cache_ref_logps=True))
    rows = pair_batch().rows()
    with plugin.forward_context():
        first, served = module.ref_logps(rows), module.ref_logps(rows)  # computed and stored, then from the cache
    assert module.reference.rows_cached == len(rows.input_ids)
    assert served.logps.dtype == torch.float32 and torch.equal(served.logps, first.logps)


def test_kto_kl_estimate_counts_rows_in_fp32_in_bf16_true():
    """bf16-true makes bf16 the default dtype inside a step; KTO's KL estimate still divides by the exact number of
    KL rows (301 is not a bf16 number: it would round to 300 or 302)."""
    plugin = HalfPrecision("bf16-true")
    module = KTOModule(model="tiny-random")
    mask = torch.ones(301, 1, dtype=torch.bool)
    policy, ref = TokenLogps(torch.ones(301, 1), mask), TokenLogps(torch.zeros(301, 1), mask)  # fp32, as always
    with plugin.forward_context():
        kl = module.kl_mean(policy, ref)
    assert kl.dtype == torch.float32 and kl.item() == 1.0
