"""The CLI: fit a smoke config end to end into MLflow, --help shows docstrings, --print_config round-trips."""

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from peft import PeftModel
from transformers import AutoModelForCausalLM

from hl_lightning.cli import main
from hl_lightning.models.loading import load_causal_lm

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "configs" / "smoke" / "humanline_dpo.yaml"


METRICS = {
    "dpo": [
        "rewards/chosen",
        "rewards/rejected",
        "rewards/accuracies",
        "rewards/margins",
        "logps/chosen",
        "logps/rejected",
        "val/rewards/margins",
    ],
    "kto": ["kl", "rewards/chosen", "rewards/rejected", "logps/chosen", "logps/rejected", "val/kl"],
    "grpo": ["reward", "reward_std", "clip_ratio", "kl", "val/reward"],
}
METRICS["ipo"] = METRICS["simpo"] = METRICS["sampling"] = METRICS["dpo"]  # DPO-style pair metrics
ROLLOUT_METRICS = [
    "reward/mean",
    "reward/std",
    "accuracy",
    "completions/mean_length",
    "completions/clipped_ratio",
    "rollout/tokens_per_s",
    "rollout/time_frac",
    "rollout/dropped_prompts",
    "rollout/rounds",
]
SMOKE_CONFIGS = sorted((REPO / "configs" / "smoke").glob("*.yaml"))


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory):
    """One MLflow store for all smoke runs (creating a sqlite store costs ~2 s); each run has its own name."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"  # absolute: MLflow caches engines per URI


@pytest.mark.parametrize("config", SMOKE_CONFIGS, ids=lambda p: p.stem)
def test_fit_smoke_config_logs_run_metrics_config_and_model(config, tmp_path, monkeypatch, shared_store):
    """2 steps: one MLflow run with TRL-named metrics, the config artifact and the saved model's path."""
    monkeypatch.chdir(tmp_path)
    uri = shared_store
    main(["fit", "--config", str(config), f"--trainer.logger.init_args.tracking_uri={uri}"])
    client = MlflowClient(uri)
    runs = client.search_runs(
        [client.get_experiment_by_name("hl_lightning").experiment_id],
        filter_string=f"tags.`mlflow.runName` = 'smoke-{config.stem}'",
    )
    assert len(runs) == 1
    run = runs[0]
    humanline, online = "humanline" in config.stem, config.stem.startswith("online")
    expected = ["loss", "val/loss", "humanline/abs_log_ratio", "eval/exact_match", *METRICS[config.stem.split("_")[-1]]]
    expected += ["humanline/unclipped_frac", "humanline/syncs"] if humanline else []
    if "sentiment" in config.stem:  # unverifiable: win-rate against the initial policy, and the judge's mean
        expected[expected.index("eval/exact_match")] = "eval/win_rate"
        expected.append("eval/reward")
    if config.stem == "simpo":  # reference-free: no log-ratio to report
        expected.remove("humanline/abs_log_ratio")
    if online:  # no validation loop online (held-out: eval/exact_match); the rollout metrics instead
        expected = [key for key in expected if not key.startswith("val/")] + ROLLOUT_METRICS
    for key in expected:
        assert key in run.data.metrics, key
    assert ("humanline/syncs" in run.data.metrics) == humanline
    if humanline:
        assert run.data.metrics["humanline/syncs"] == 2.0
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["config.yaml", "tables", "training_curves.png"]
    tables = [a.path for a in client.list_artifacts(run.info.run_id, "tables")]
    assert tables == ["tables/heldout_answers.json"] + (["tables/online_samples.json"] if online else [])
    saved = Path(client.download_artifacts(run.info.run_id, "config.yaml", str(tmp_path))).read_text()
    gate = "SampleLogRatio" if "sampling" in config.stem else "ClipLogRatio"
    assert ("RefSyncCallback" in saved) == humanline and (gate in saved) == humanline
    if "lora" in config.stem:  # the adapter's options are findable in MLflow
        found = {k: v for k, v in run.data.params.items() if "peft" in k and k.endswith((".r", ".lora_alpha"))}
        assert found == {"model.init_args.peft.init_args.r": "16", "model.init_args.peft.init_args.lora_alpha": "32"}
    export_dir = Path(run.data.params["saved_model_path"])
    if (export_dir / "adapter_config.json").exists():  # LoRA without merge: the adapter alone
        assert PeftModel.from_pretrained(load_causal_lm("tiny-random"), export_dir).peft_config["default"].r == 16
        assert not (export_dir / "model.safetensors").exists()
    else:
        assert AutoModelForCausalLM.from_pretrained(export_dir).num_parameters() > 0
    assert (export_dir / "tokenizer_config.json").exists()


def test_model_help_shows_docstrings(capsys):
    """`fit --model.help DPOModule` lists every option with its docstring help."""
    with pytest.raises(SystemExit, match=r"^0$"):
        main(["fit", "--model.help", "hl_lightning.modules.DPOModule"])
    out = capsys.readouterr().out
    for text in [
        "DPO temperature",
        "--model.clip",
        "humanline clipping",
        "--model.export_dir",
        "--model.optimizer",
        "--model.peft",
        "train a LoRA adapter",
        "--model.merge",
    ]:
        assert text in out, text


def test_print_config_is_complete_and_rerunnable(tmp_path, monkeypatch, capsys):
    """--print_config emits a config that fits again on its own."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match=r"^0$"):
        main(["fit", "--config", str(SMOKE), "--print_config"])
    printed = capsys.readouterr().out
    assert "class_path: hl_lightning.modules.DPOModule" in printed and "log_eps_P: -1.5" in printed
    (tmp_path / "printed.yaml").write_text(printed)
    main(
        [
            "fit",
            "--config",
            "printed.yaml",
            "--trainer.max_steps=1",
            f"--trainer.logger.init_args.tracking_uri=sqlite:///{tmp_path}/mlflow.db",
        ]
    )


def test_python_dash_m_is_the_cli():
    """`python -m hl_lightning` is the same entry point as the `hl-lightning` console script."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "hl_lightning", "fit", "--help"], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert out.returncode == 0 and "--trainer.max_steps" in out.stdout and "--model" in out.stdout


def test_console_script_fit_exits_zero(tmp_path):
    """The installed `hl-lightning` script trains and exits with status 0 (make demo relies on it)."""
    import subprocess
    import sys

    script = Path(sys.executable).parent / "hl-lightning"
    out = subprocess.run(
        [
            str(script),
            "fit",
            "--config",
            str(REPO / "configs" / "smoke" / "dpo.yaml"),
            "--trainer.max_steps=1",
            f"--trainer.logger.init_args.tracking_uri=sqlite:///{tmp_path}/m.db",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Training finished." in out.stdout
