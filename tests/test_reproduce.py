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
from hl_lightning.reproduce.aggregate import compare, difference, grouped_bars, markdown, tuning_table
from hl_lightning.reproduce.plan import LR, Arm, apply
from hl_lightning.reproduce.runner import choose_lrs, prepare, run_config

REPO = Path(__file__).resolve().parents[1]
PLAN = {
    "name": "tiny",
    "task": "arithmetic",
    "seeds": [0, 1],
    "steps": 2,
    "eval_every": 1,
    "eval_limit": 2,
    "bases": {"dpo": str(REPO / "configs" / "smoke" / "humanline_dpo.yaml")},
    "arms": [
        {"name": "humanline", "base": "dpo"},
        {
            "name": "plain",
            "base": "dpo",
            "overrides": {"model.init_args.clip": None, "trainer.callbacks.RefSyncCallback": None},
        },
    ],
}


def write_plan(tmp_path, **changes) -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump({**PLAN, **changes}))
    return path


def reproduce(tmp_path, plan: Path, *extra, wait=True):
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    args = [
        sys.executable,
        "-m",
        "hl_lightning",
        "reproduce",
        "--plan",
        str(plan),
        "--out",
        str(tmp_path / "out"),
        *extra,
    ]
    if wait:
        return subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    return subprocess.Popen(
        args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )


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
    assert "extends" not in base and base["model"]["init_args"]["model"] == "tiny-random"  # composed from its layers
    run = run_config(plan, plan.arms[0], 0, tmp_path / "run", "sqlite:///m.db")
    assert (
        "extends" not in run and run["trainer"]["max_steps"] == 2 and run["data"]["init_args"]["path"] == "arithmetic"
    )
    plain = apply(base, plan.arms[1].overrides)
    assert plain["model"]["init_args"]["clip"] is None
    assert not any(cb["class_path"].endswith("RefSyncCallback") for cb in plain["trainer"]["callbacks"])
    k4 = apply(base, {"trainer.callbacks.RefSyncCallback.init_args.every_n_steps": 4})
    assert [cb["init_args"] for cb in k4["trainer"]["callbacks"] if "RefSync" in cb["class_path"]] == [
        {"every_n_steps": 4}
    ]
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
    assert first.stat().st_mtime_ns == stamp and "[runs 1/4]" not in done.stdout  # the finished run is not rerun
    assert "[runs 2/4] plain seed 0" in done.stdout
    summary = json.loads((tmp_path / "out" / "results.json").read_text())
    arms = {row["arm"]: row for row in summary["arms"]}
    assert summary["runs"] == 4 and set(arms) == {"humanline", "plain"}
    for row in arms.values():
        finals = [
            json.loads(p.read_text())["history"][-1][1]
            for p in (tmp_path / "out" / "runs" / row["arm"]).glob("seed*/result.json")
        ]
        assert row["failed"] == 0 and row["final"] == pytest.approx(sum(finals) / 2)
        assert row["final_ci"] == list(bootstrap_ci(finals))
    result = json.loads(first.read_text())
    assert [step for step, _ in result["history"]] == [0, 1, 2]  # held-out score every step
    (initial,) = json.loads((tmp_path / "out" / "initial_scores.json").read_text()).values()  # scored once
    for path in (tmp_path / "out" / "runs").glob("*/seed*/"):
        assert json.loads((path / "result.json").read_text())["history"][0] == [0, initial]
        seed = int(path.name.removeprefix("seed"))
        written = yaml.safe_load((path / "config.yaml").read_text())  # flattened: it runs on its own
        assert written["data"]["init_args"]["seed"] == seed and "extends" not in written
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


def tuned_plan(tmp_path, **changes) -> Plan:
    tune = {
        "lrs": [1e-5, 1e-3],
        "seed": 0,
        "arms": ["plain"],
        "validation": {
            "dpo": {
                "data.init_args.path": "hl_lightning/data/arithmetic/pairs_train.jsonl",
                "data.init_args.val_fraction": 0.25,
            }
        },
    }
    arms = [
        {"name": "plain", "base": "dpo", "overrides": PLAN["arms"][1]["overrides"]},
        {"name": "humanline", "base": "dpo", "lr_from": "plain"},
        {"name": "fixed", "base": "dpo"},
    ]
    return Plan.load(write_plan(tmp_path, **{"tune": tune, "arms": arms, **changes}))


def fake_result(out, arm, lr, score, status="ok", overwrite=False):
    path = out / "tune" / f"{arm}/lr{lr:g}" / "seed0" / "result.json"
    path.parent.mkdir(parents=True, exist_ok=overwrite)
    path.write_text(json.dumps({"status": status, "history": [[0, 0.1], [2, score]] if status == "ok" else []}))


def test_an_lr_chosen_at_the_edge_of_its_grid_is_flagged(tmp_path, capsys):
    """Of 1e-5, 1e-4, 1e-3: the smallest or the largest chosen is flagged (a value beyond may be better), in the
    tuning file, the printout and the table; the middle one is not."""
    plan, out = tuned_plan(tmp_path), tmp_path / "out"
    plan.tune.lrs = [1e-5, 1e-4, 1e-3]
    for lr, score in zip(plan.tune.lrs, (0.5, 0.3, 0.1), strict=True):
        fake_result(out, "plain", lr, score)
    assert choose_lrs(plan, out) == {"plain": 1e-5}
    assert json.loads((out / "tuning.json").read_text())["arms"]["plain"]["edge"] == "low"
    assert "warning: tuned arm 'plain' chose lr 1e-05, the low edge of its grid" in capsys.readouterr().out
    assert "| 1e-05 (the grid's low edge: a value beyond it may be better) |" in tuning_table(out)
    fake_result(out, "plain", 1e-4, 0.6, overwrite=True)
    assert (
        choose_lrs(plan, out) == {"plain": 1e-4}
        and "edge" not in json.loads((out / "tuning.json").read_text())["arms"]["plain"]
    )
    fake_result(out, "plain", 1e-3, 0.7, overwrite=True)
    assert choose_lrs(plan, out) == {"plain": 1e-3} and "the high edge" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("scores", "chosen"),
    [((0.2, 0.4), 1e-3), ((0.4, 0.2), 1e-5), ((0.3, 0.3), 1e-5), ((0.1, None), 1e-5)],
    ids=["higher", "lower", "tie", "failed"],
)
def test_the_lr_with_the_best_validation_score_is_chosen_and_passed_on(tmp_path, scores, chosen):
    """Best final validation score wins; a tie goes to the smaller lr; a failed run never wins. The tuned arm
    and its lr_from arm train every seed with it; an arm that is not tuned keeps its config's lr."""
    plan, out = tuned_plan(tmp_path), tmp_path / "out"
    assert choose_lrs(plan, out) is None  # nothing tuned yet: the main runs wait
    for lr, score in zip(plan.tune.lrs, scores, strict=True):
        fake_result(out, "plain", lr, score, "ok" if score is not None else "failed")
    assert choose_lrs(plan, out) == {"plain": chosen}
    tuning = json.loads((out / "tuning.json").read_text())["arms"]["plain"]
    assert tuning["chosen"] == chosen and tuning["scores"]["1e-05"] == scores[0]
    lrs = {(arm.name, seed): arm.overrides.get(LR) for arm, seed in plan.jobs({"plain": chosen})}
    assert lrs == {
        ("plain", 0): chosen,
        ("plain", 1): chosen,
        ("humanline", 0): chosen,
        ("humanline", 1): chosen,
        ("fixed", 0): None,
        ("fixed", 1): None,
    }
    assert "| plain | " in tuning_table(out) and f"| {chosen:g} |" in tuning_table(out)


def test_tuning_runs_score_a_validation_split_of_the_training_questions(tmp_path):
    plan = tuned_plan(tmp_path)
    (arm, lr), _ = plan.tune.jobs({a.name: a for a in plan.arms})
    config = run_config(plan, arm, 0, tmp_path / "run", "sqlite:///x.db", tuning=True)
    assert config["data"]["init_args"]["path"].endswith("pairs_train.jsonl")  # not the held-out file
    assert config["data"]["init_args"]["val_fraction"] == 0.25 and lr == 1e-5
    assert config["model"]["init_args"]["optimizer"]["init_args"]["lr"] == 1e-5
    (heldout,) = [cb for cb in config["trainer"]["callbacks"] if cb["class_path"].endswith("HeldOutEval")]
    assert heldout["init_args"]["every_n_steps"] is None  # before and after only
    assert config["trainer"]["logger"]["init_args"]["tags"]["phase"] == "tune"


def test_bad_tuning_options_fail_before_any_run(tmp_path):
    with pytest.raises(ValueError, match="arm 'humanline': lr_from 'nobody' is not a tuned arm"):
        tuned_plan(tmp_path, arms=[{"name": "humanline", "base": "dpo", "lr_from": "nobody"}])
    with pytest.raises(ValueError, match=r"tune\.validation\.dpo: unknown override 'data\.init_args\.pth'"):
        Plan.load(
            write_plan(
                tmp_path, tune={"lrs": [1e-5], "arms": ["plain"], "validation": {"dpo": {"data.init_args.pth": "x"}}}
            )
        )


def test_prepare_makes_missing_files_once_and_overrides_see_them(tmp_path):
    script = "import sys; open(sys.argv[1], 'w').write('made')"
    plan = Plan.load(
        write_plan(
            tmp_path, prepare={"data": {"output": "data/x.txt", "command": [sys.executable, "-c", script, "{output}"]}}
        )
    )
    prepare(plan, tmp_path / "out")
    made = tmp_path / "out" / "data" / "x.txt"
    assert made.read_text() == "made"
    made.write_text("kept")
    prepare(plan, tmp_path / "out")
    assert made.read_text() == "kept"  # an existing file is not remade
    arm = Arm("a", "dpo", {"data.init_args.path": "{out}/data/x.txt"})
    config = run_config(plan, arm, 0, tmp_path / "out" / "runs" / "a" / "seed0", "sqlite:///x.db", out=tmp_path / "out")
    assert config["data"]["init_args"]["path"] == str(made.resolve())


def test_plan_figures_are_grouped_bars(tmp_path):
    rows = {
        name: {"final": v, "final_ci": [v - 0.05, v + 0.05]}
        for name, v in [("none", 0.1), ("clip", 0.2), ("sync", 0.15), ("both", 0.3)]
    }
    spec = {
        "title": "ablation",
        "series": {
            "DPO": {"none": "none", "clip": "clip", "sync": "sync", "both": "both"},
            "KTO": {"none": "none", 1: "missing"},
        },
    }
    path = grouped_bars(tmp_path / "ablation.png", spec, rows)
    png = path.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert grouped_bars(tmp_path / "empty.png", {"series": {"x": {"a": "missing"}}}, rows) is None


def test_an_arm_may_run_a_subset_of_the_seeds(tmp_path):
    arms = [{"name": "core", "base": "dpo"}, {"name": "extra", "base": "dpo", "seeds": [1]}]
    plan = Plan.load(write_plan(tmp_path, arms=arms))
    assert [(arm.name, seed) for arm, seed in plan.jobs()] == [("core", 0), ("core", 1), ("extra", 1)]
    with pytest.raises(ValueError, match=r"arm 'extra': seeds \[5\] are not all plan seeds \[0, 1\]"):
        Plan.load(write_plan(tmp_path, arms=[{"name": "extra", "base": "dpo", "seeds": [5]}]))


def test_every_run_of_a_stage_comes_before_the_next_stage(tmp_path):
    arms = [
        {"name": "late", "base": "dpo", "stage": 2},
        {"name": "core", "base": "dpo"},
        {"name": "extra", "base": "dpo", "seeds": [1]},
    ]
    plan = Plan.load(write_plan(tmp_path, arms=arms))
    assert [(arm.name, seed) for arm, seed in plan.jobs({"core": 1e-5})] == [
        ("core", 0),
        ("core", 1),
        ("extra", 1),
        ("late", 0),
        ("late", 1),
    ]
    with pytest.raises(ValueError, match=r"arm 'late': stage must be an integer >= 1, got 0"):
        Plan.load(write_plan(tmp_path, arms=[{"name": "late", "base": "dpo", "stage": 0}]))


def test_differences_are_paired_by_seed_with_their_ci_by_hand():
    """b − a per shared seed: 0.2 − 0.1, 0.3 − 0.1, 0.1 − 0.2 = 0.1, 0.2, −0.1: mean 0.0667, b wins 2 of 3.
    With three paired differences the bootstrap means lie in [−0.1, 0.2] and the CI is that of the differences.
    Unpaired (no two shared seeds), two identical single runs differ by exactly 0.3 in every resample."""
    a, b = {0: 0.1, 1: 0.1, 2: 0.2}, {0: 0.2, 1: 0.3, 2: 0.1, 5: 0.9}
    paired = difference(a, b)
    assert paired["diff"] == pytest.approx(0.2 / 3, rel=1e-12) and paired["paired"] == 3 and paired["wins"] == 2
    assert paired["ci"] == pytest.approx(bootstrap_ci([0.1, 0.2, -0.1]), rel=1e-12)
    assert paired["ci"][0] < 0.0667 < paired["ci"][1]
    lone = difference({0: 0.1}, {1: 0.4})
    assert lone["paired"] == 0 and lone["diff"] == pytest.approx(0.3) and lone["ci"] == pytest.approx((0.3, 0.3))
    runs = {
        "x": [{"seed": s, "status": "ok", "history": [[0, 0.0], [2, v]], "wall_s": 10.0} for s, v in a.items()],
        "y": [{"seed": s, "status": "ok", "history": [[0, 0.0], [2, v]], "wall_s": 25.0} for s, v in b.items()],
    }
    (row,) = compare({"y vs x": {"a": "x", "b": "y"}, "not run": {"a": "x", "b": "z"}}, runs)
    assert row["comparison"] == "y vs x" and row["wall_ratio"] == 2.5 and row["diff"] == paired["diff"]


def test_an_arm_not_run_yet_is_listed_and_a_bad_comparison_is_refused(tmp_path):
    table = markdown("tiny", [], {"late": 3})
    assert "| late | – | 0 | – | – | not run yet (stage 3) |" in table
    bad = {"typo": {"a": "plain", "b": "humanlin"}}
    with pytest.raises(ValueError, match=r"comparison 'typo': needs exactly a and b, each an arm .*'humanlin'"):
        Plan.load(write_plan(tmp_path, comparisons=bad))


def test_a_plan_too_short_for_an_arm_s_k_or_n_warns_naming_it(tmp_path, caplog):
    """Fewer than 4 syncs (k) or 4 sampling rounds (N) in the plan's steps: a warning per arm, naming it."""
    online = str(REPO / "configs" / "smoke" / "online_dpo.yaml")
    arms = [
        {"name": "k4", "base": "dpo", "overrides": {"trainer.callbacks.RefSyncCallback.init_args.every_n_steps": 4}},
        {"name": "k2", "base": "dpo", "overrides": {"trainer.callbacks.RefSyncCallback.init_args.every_n_steps": 2}},
        {"name": "plain", "base": "dpo", "overrides": {"trainer.callbacks.RefSyncCallback": None}},
        {"name": "n4", "base": "online", "overrides": {"data.init_args.sample_every_n_steps": 4}},
        {"name": "n2", "base": "online", "overrides": {"data.init_args.sample_every_n_steps": 2}},
    ]
    bases = {"dpo": PLAN["bases"]["dpo"], "online": online}
    with caplog.at_level("WARNING", logger="hl_lightning.reproduce.plan"):
        Plan.load(write_plan(tmp_path, steps=8, arms=arms, bases=bases))
    warned = sorted(record.args[1] for record in caplog.records)
    assert warned == ["k4", "n4"]
    assert "raise steps to at least 16" in caplog.records[0].getMessage()


@pytest.mark.parametrize("path", sorted((REPO / "configs" / "reproduce").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_plan_validates(path, monkeypatch):
    """Bases compose, every override names an option, comparisons name arms (no run, no model loaded)."""
    monkeypatch.chdir(REPO)  # plans name their bases relative to the repository
    plan = Plan.load(path)
    assert plan.jobs() and {arm.name for arm, _ in plan.jobs()} == {arm.name for arm in plan.arms}
