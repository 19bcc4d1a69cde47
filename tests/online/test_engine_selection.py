"""Choosing the rollout engine: from YAML for an online fit, from ``hl-lightning-sample``, when it is refreshed, and
the one-line error for a class that is not an engine."""

import copy
import functools
import json
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Callback

from hl_lightning.cli import build_cli
from hl_lightning.cli import main as fit_main
from hl_lightning.models.engines import KVCacheEngine
from hl_lightning.models.hf_engine import TransformersGenerateEngine
from hl_lightning.modules import GRPOModule
from hl_lightning.online import PairBuilder
from hl_lightning.online.sample_dataset import main as sample_main
from tests.helpers import trainer
from tests.online.helpers import adamw, online_data

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "configs" / "smoke" / "online_grpo.yaml"


class RecordingEngine(KVCacheEngine):
    """The default engine, recording the policy (and a copy of its weights) at each refresh."""

    def __init__(self) -> None:
        super().__init__()
        self.refreshed: list[tuple[torch.nn.Module, dict]] = []

    def refresh(self, policy):
        self.refreshed.append((policy, copy.deepcopy(policy.state_dict())))
        super().refresh(policy)


class StepWeights(Callback):
    """The policy's weights after each optimizer step, keyed by ``global_step``."""

    def __init__(self) -> None:
        self.weights: dict[int, dict] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.weights[trainer.global_step] = copy.deepcopy(pl_module.policy.state_dict())


def same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_the_engine_is_refreshed_with_the_policy_at_each_round_start(tmp_path, lively_model):
    """N = 2 for 4 steps: two rounds, so two refreshes, each with the module's policy as it is then (the initial
    weights, then the weights after step 2), never in between."""
    engine, steps = RecordingEngine(), StepWeights()
    module = GRPOModule(model=lively_model, optimizer=adamw())
    initial = copy.deepcopy(module.policy.state_dict())
    trainer(4, [steps], tmp_path).fit(module, datamodule=online_data(sample_every_n_steps=2, engine=engine))
    assert [policy is module.policy for policy, _ in engine.refreshed] == [True, True]
    first, second = (weights for _, weights in engine.refreshed)
    assert same(first, initial) and same(second, steps.weights[2]) and not same(second, steps.weights[1])


def spy_on(monkeypatch, cls) -> dict[str, list]:
    """Record the policies ``cls`` is refreshed with and count its decoded batches."""
    calls: dict[str, list] = {"refresh": [], "decode": []}
    refresh, decode = cls.refresh, cls.decode

    @functools.wraps(refresh)  # keeps the signature the command line checks against RolloutEngine
    def spy_refresh(self, policy):
        calls["refresh"].append(policy)
        return refresh(self, policy)

    @functools.wraps(decode)
    def spy_decode(self, *args):
        calls["decode"].append(type(self))
        return decode(self, *args)

    monkeypatch.setattr(cls, "refresh", spy_refresh)
    monkeypatch.setattr(cls, "decode", spy_decode)
    return calls


def test_an_online_fit_from_yaml_samples_with_transformers_generate(tmp_path, monkeypatch):
    """configs/smoke/online_grpo.yaml plus ``data.init_args.engine: {class_path: ...TransformersGenerateEngine}``:
    2 steps, 2 rounds, each refreshing that engine with the module's policy and sampling through it."""
    monkeypatch.chdir(tmp_path)
    calls = spy_on(monkeypatch, TransformersGenerateEngine)
    config = tmp_path / "online_grpo_hf.yaml"
    config.write_text(
        f"extends: [{SMOKE}]\n"
        "data:\n  init_args:\n    engine: {class_path: hl_lightning.online.TransformersGenerateEngine}\n"
        "trainer:\n  callbacks: []\n  logger: false\n"
    )
    cli = build_cli(["fit", "--config", str(config)])
    assert type(cli.datamodule.engine) is TransformersGenerateEngine
    assert cli.trainer.global_step == 2 and cli.trainer.callback_metrics["rollout/rounds"] == 2
    assert calls["refresh"] == [cli.model.policy] * 2 and len(calls["decode"]) >= 2


def test_hl_lightning_sample_takes_an_engine_and_records_it(tmp_path, monkeypatch, tokenizer, lively_weights):
    from hl_lightning.models.loading import load_causal_lm

    model = load_causal_lm("tiny-random")
    model.load_state_dict(lively_weights)
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    calls = spy_on(monkeypatch, TransformersGenerateEngine)
    args = ["--model", str(tmp_path / "model"), "--builder", "GroupBuilder", "--limit", "2"]
    args += ["--sampling.num_generations", "2", "--sampling.max_new_tokens", "3"]
    args += ["--reward.class_path", "hl_lightning.rewards.ExactMatchReward"]
    for name, extra in [("hf", ["--engine.class_path", "hl_lightning.online.TransformersGenerateEngine"]), ("kv", [])]:
        sample_main([*args, "--output", str(tmp_path / f"{name}.jsonl"), *extra])
    meta = {name: json.loads((tmp_path / f"{name}.jsonl.meta.json").read_text()) for name in ("hf", "kv")}
    assert meta["hf"]["engine"] == "hl_lightning.models.hf_engine.TransformersGenerateEngine"
    assert meta["kv"]["engine"] == "hl_lightning.models.engines.KVCacheEngine"
    assert meta["hf"]["rows"] == 2 and len(calls["refresh"]) == 1 and len(calls["decode"]) == 1


def test_an_object_that_is_not_an_engine_is_one_clear_error():
    with pytest.raises(TypeError, match=r"^OnlineDataModule\(engine=\.\.\.\): PairBuilder is not a rollout engine: it"):
        online_data(engine=PairBuilder())


NOT_AN_ENGINE = "hl_lightning.online.PairBuilder"
FIT = ["fit", "--config", str(SMOKE), f"--data.init_args.engine.class_path={NOT_AN_ENGINE}"]
SAMPLE = ["--model", "tiny-random", "--output", "x.jsonl", "--builder", "PairBuilder"]
SAMPLE += ["--reward.class_path=hl_lightning.rewards.ExactMatchReward", f"--engine.class_path={NOT_AN_ENGINE}"]


@pytest.mark.parametrize(
    "command, args, option",
    [(fit_main, FIT, "data.init_args.engine"), (sample_main, SAMPLE, "engine")],
    ids=["hl-lightning fit", "hl-lightning-sample"],
)
def test_a_class_that_is_not_an_engine_is_one_line_naming_the_option(
    command, args, option, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match=r"^2$"):
        command(args)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "usage" not in err, err
    assert err.startswith(f"error: {option}: {NOT_AN_ENGINE} does not implement RolloutEngine: an engine needs "), err
