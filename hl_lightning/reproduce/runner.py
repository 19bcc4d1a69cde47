"""Run a plan: every (arm, seed) in its own process, one after another, resumable, with a progress line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from hl_lightning.reproduce.plan import Arm, Plan, apply


def run_config(plan: Plan, arm: Arm, seed: int, run_dir: Path, store: str) -> dict:
    """The arm's config for one seed: overrides, the plan's budget and held-out scoring, paths under ``run_dir``,
    and MLflow tags (task, arm, seed, lr) in the plan's experiment."""
    config = apply(plan.base_config(arm.base), arm.overrides)
    config["seed_everything"] = seed
    config["data"].setdefault("init_args", {})["seed"] = seed  # data order, split and rollouts follow the seed
    trainer, model = config["trainer"], config["model"]["init_args"]
    trainer["max_steps"] = plan.steps
    trainer["default_root_dir"] = str(run_dir)
    lr = (model.get("optimizer") or {}).get("init_args", {}).get("lr")
    logger = trainer["logger"]["init_args"]
    logger.update(experiment_name=f"reproduce-{plan.name}", run_name=f"{arm.name}-seed{seed}", tracking_uri=store,
                  tags={"task": plan.task, "arm": arm.name, "seed": str(seed), "lr": str(lr), "plan": plan.name})
    model["export_dir"] = None
    trainer["enable_checkpointing"] = False  # a sweep resumes by run; checkpoint writes would skew the wall-clock
    trainer["callbacks"] = [cb for cb in trainer.get("callbacks", []) if "ModelCheckpoint" not in cb["class_path"]]
    for cb in trainer.get("callbacks", []):
        if cb["class_path"].endswith("HeldOutEval"):
            cb.setdefault("init_args", {}).update(every_n_steps=plan.eval_every, limit=plan.eval_limit,
                                                  batch_size=plan.eval_batch_size)
    return config


def heldout_callback(config: dict) -> dict | None:
    return next((cb for cb in config["trainer"].get("callbacks", []) if cb["class_path"].endswith("HeldOutEval")),
                None)


HELD_OUT_FIELDS = ("path", "val_path", "prompts", "val_fraction", "seed", "max_prompt_length", "tokenizer", "columns")


def initial_key(config: dict) -> str:
    """What the step-0 held-out score depends on: the model, the options that pick and render the held-out
    prompts, and the greedy generation budget; not the objective or the training seed (the split's seed only
    when the held-out prompts are a split). Two runs with the same key score the same initial policy alike."""
    data = dict(config["data"]["init_args"])
    source = data.get("prompts", data.get("path"))
    if data.get("val_path") or source == "arithmetic":
        data.pop("seed", None)  # a held-out file: the seed does not choose it
    cb = heldout_callback(config)["init_args"]
    key = {"model": config["model"]["init_args"].get("model", "smollm2"), "limit": cb.get("limit"),
           "max_new_tokens": cb.get("max_new_tokens", 24), **{k: data[k] for k in HELD_OUT_FIELDS if k in data}}
    return json.dumps(key, sort_keys=True)


def reuse_initial(config: dict, out: Path) -> str | None:
    """Pass a known step-0 score (``initial_scores.json``) to the run's HeldOutEval; return the run's key."""
    if heldout_callback(config) is None:
        return None
    key, known = initial_key(config), out / "initial_scores.json"
    scores = json.loads(known.read_text()) if known.exists() else {}
    if key in scores:
        heldout_callback(config)["init_args"]["initial"] = scores[key]
    return key


def remember_initial(key: str | None, record: dict, out: Path) -> None:
    known = out / "initial_scores.json"
    scores = json.loads(known.read_text()) if known.exists() else {}
    if key is not None and key not in scores and record["history"] and record["history"][0][0] == 0:
        scores[key] = record["history"][0][1]
        known.write_text(json.dumps(scores, indent=1))


def run_one(plan: Plan, arm: Arm, seed: int, out: Path, store: str) -> dict:
    """Train one (arm, seed) in a child process; ``result.json`` is written last, so its presence means done."""
    run_dir = out / "runs" / arm.name / f"seed{seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    config = run_config(plan, arm, seed, run_dir.resolve(), store)
    key = reuse_initial(config, out)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    start = time.perf_counter()
    with open(run_dir / "log.txt", "w", encoding="utf-8") as log:
        proc = subprocess.run([sys.executable, "-m", "hl_lightning", "fit", "--config", str(run_dir / "config.yaml")],
                              stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    heldout = run_dir / "heldout.json"
    record = json.loads(heldout.read_text()) if heldout.exists() else {"history": [], "final_rollout_metrics": {}}
    if proc.returncode == 0:
        remember_initial(key, record, out)
    result = {"arm": arm.name, "seed": seed, "status": "ok" if proc.returncode == 0 else "failed",
              "returncode": proc.returncode, "wall_s": time.perf_counter() - start, "steps": plan.steps,
              "lr": config["trainer"]["logger"]["init_args"]["tags"]["lr"], **record}
    (run_dir / "result.json").write_text(json.dumps(result, indent=1))
    return result


def run_plan(plan: Plan, out: Path, max_runs: int | None = None) -> list[dict]:
    """Run every (arm, seed) without a ``result.json`` (a finished run is never rerun; an interrupted one restarts),
    at most ``max_runs`` of them; print ``[i/n] arm seed s ... ETA``; return every result so far."""
    out.mkdir(parents=True, exist_ok=True)
    store = f"sqlite:///{(out / 'mlflow.db').resolve()}"
    jobs, durations, ran = plan.jobs(), [], 0
    for i, (arm, seed) in enumerate(jobs, 1):
        done = out / "runs" / arm.name / f"seed{seed}" / "result.json"
        if done.exists() or (max_runs is not None and ran >= max_runs):
            continue
        left = sum(not (out / "runs" / a.name / f"seed{s}" / "result.json").exists() for a, s in jobs[i - 1:])
        eta = f"{sum(durations) / len(durations) * left / 60:.0f} min" if durations else "?"
        print(f"[{i}/{len(jobs)}] {arm.name} seed {seed}  (ETA {eta})", flush=True)
        result = run_one(plan, arm, seed, out, store)
        durations.append(result["wall_s"])
        ran += 1
        print(f"    {result['status']} in {result['wall_s']:.0f} s", flush=True)
    return [json.loads(p.read_text()) for p in sorted((out / "runs").glob("*/seed*/result.json"))]
