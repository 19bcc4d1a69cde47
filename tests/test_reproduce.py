"""The sweep runner on the tiny model: a 2-arm x 2-seed plan end to end, an interrupted sweep resumed without
rerunning what finished, the CI arithmetic, the figures, and a bad override refused before any run."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from hl_lightning.reproduce import Plan, bootstrap_ci
from hl_lightning.reproduce.plan import apply

REPO = Path(__file__).resolve().parents[1]
PLAN = {
    "name": "tiny", "task": "arithmetic", "seeds": [0, 1], "steps": 2, "eval_every": 1, "eval_limit": 2,
    "bases": {"dpo": str(REPO / "configs" / "smoke" / "humanline_dpo.yaml")},
    "arms": [{"name": "humanline", "base": "dpo"},
             {"name": "plain", "base": "dpo",
              "overrides": {"model.init_args.clip": None, "trainer.callbacks.RefSyncCallback": None}}],
}


def write_plan(tmp_path, **changes) -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump({**PLAN, **changes}))
    return path


def reproduce(tmp_path, plan: Path, *extra, wait=True):
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    args = [sys.executable, "-m", "hl_lightning", "reproduce", "--plan", str(plan), "--out", str(tmp_path / "out"),
            *extra]
    if wait:
        return subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    return subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)


def test_bootstrap_ci_by_hand():
    assert bootstrap_ci([0.3]) == (0.3, 0.3)
    assert bootstrap_ci([0.5, 0.5, 0.5]) == (0.5, 0.5)  # no spread: every resample has mean 0.5
    low, high = bootstrap_ci([0.0, 1.0], draws=4000)
    assert (low, high) == (0.0, 1.0)  # the resampled means are 0, 0.5 or 1 (p = 1/4, 1/2, 1/4): 2.5 % / 97.5 % tails
    low, high = bootstrap_ci([0.1, 0.2, 0.3, 0.4])
    assert 0.1 <= low < 0.25 < high <= 0.4 and bootstrap_ci([0.1, 0.2, 0.3, 0.4]) == (low, high)  # seeded


def test_overrides_apply_and_unknown_keys_fail_before_any_run(tmp_path):
    plan = Plan.load(write_plan(tmp_path))
    base = plan.base_config("dpo")
    plain = apply(base, plan.arms[1].overrides)
    assert plain["model"]["init_args"]["clip"] is None
    assert not any(cb["class_path"].endswith("RefSyncCallback") for cb in plain["trainer"]["callbacks"])
    k4 = apply(base, {"trainer.callbacks.RefSyncCallback.init_args.every_n_steps": 4})
    assert [cb["init_args"] for cb in k4["trainer"]["callbacks"] if "RefSync" in cb["class_path"]] == [
        {"every_n_steps": 4}]
    bad = write_plan(tmp_path, arms=[{"name": "typo", "base": "dpo", "overrides": {"model.init_args.betta": 0.2}}])
    result = reproduce(tmp_path, bad)
    assert result.returncode == 2 and "arm 'typo': unknown override 'model.init_args.betta'" in result.stderr
    assert not (tmp_path / "out").exists()  # nothing ran


def test_plan_runs_resumes_and_aggregates(tmp_path):
    plan = write_plan(tmp_path)
    proc = reproduce(tmp_path, plan, wait=False)
    first = tmp_path / "out" / "runs" / "humanline" / "seed0" / "result.json"
    deadline = time.time() + 300
    while not first.exists() and time.time() < deadline:
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep dies during its second run
    proc.wait()
    assert first.exists()
    stamp = first.stat().st_mtime_ns
    done = reproduce(tmp_path, plan)
    assert done.returncode == 0, done.stderr[-3000:]
    assert first.stat().st_mtime_ns == stamp and "[1/4]" not in done.stdout  # the finished run is not rerun
    assert "[2/4] plain seed 0" in done.stdout
    summary = json.loads((tmp_path / "out" / "results.json").read_text())
    arms = {row["arm"]: row for row in summary["arms"]}
    assert summary["runs"] == 4 and set(arms) == {"humanline", "plain"}
    for row in arms.values():
        finals = [json.loads(p.read_text())["history"][-1][1]
                  for p in (tmp_path / "out" / "runs" / row["arm"]).glob("seed*/result.json")]
        assert row["failed"] == 0 and row["final"] == pytest.approx(sum(finals) / 2)
        assert row["final_ci"] == list(bootstrap_ci(finals))
    result = json.loads(first.read_text())
    assert [step for step, _ in result["history"]] == [0, 1, 2]  # held-out score every step
    assert "| humanline |" in (tmp_path / "out" / "results.md").read_text()
    for name in ("curves.png", "arms.png"):
        png = (tmp_path / "out" / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    client = MlflowClient(f"sqlite:///{tmp_path / 'out' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("reproduce-tiny").experiment_id])
    finished = [r for r in runs if r.info.status == "FINISHED"]
    assert len(finished) == 4
    tags = {(r.data.tags["arm"], r.data.tags["seed"]): r.data.tags for r in finished}
    assert tags[("plain", "1")]["humanline.clip"] == "none" and tags[("humanline", "0")]["humanline.sync_k"] == "1"
    assert {t["task"] for t in tags.values()} == {"arithmetic"} and all(float(t["lr"]) == 1e-5 for t in tags.values())
