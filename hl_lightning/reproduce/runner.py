"""Run a plan: every (arm, seed) in its own process, one after another, resumable, with a progress line."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

from hl_lightning.data.prompts import TASKS
from hl_lightning.reproduce.plan import Arm, Plan, apply

# A run's child process imports what ``hl-lightning fit`` would: ``-P`` (Python 3.11+) keeps the working directory
# off sys.path, so a user's own modules there (a ``yaml.py``, a ``data/`` package) never shadow a library's.
_FIT = [sys.executable, *(["-P"] if sys.version_info >= (3, 11) else []), "-m", "hl_lightning", "fit"]


def run_config(
    plan: Plan, arm: Arm, seed: int, run_dir: Path, store: str, tuning: bool = False, out: Path | None = None
) -> dict:
    """The arm's config for one seed: overrides, the plan's budget and held-out scoring, paths under ``run_dir``,
    and MLflow tags (task, arm, seed, lr, phase) in the plan's experiment. A ``tuning`` run scores its
    validation split only before and after training. ``{out}`` in an override string is ``out`` (the results
    directory)."""
    where = str((out or run_dir).resolve())
    overrides = {k: v.replace("{out}", where) if isinstance(v, str) else v for k, v in arm.overrides.items()}
    config = apply(plan.base_config(arm.base), overrides)
    config["seed_everything"] = seed
    config["data"].setdefault("init_args", {})["seed"] = seed  # data order, split and rollouts follow the seed
    trainer, model = config["trainer"], config["model"]["init_args"]
    trainer["max_steps"] = arm.steps or plan.steps
    trainer["default_root_dir"] = str(run_dir)
    lr = (model.get("optimizer") or {}).get("init_args", {}).get("lr")
    logger = trainer["logger"]["init_args"]
    logger.update(
        experiment_name=f"reproduce-{plan.name}",
        run_name=f"{arm.name}-seed{seed}",
        tracking_uri=store,
        tags={
            "task": arm.task or plan.task,
            "arm": arm.name,
            "seed": str(seed),
            "lr": str(lr),
            "plan": plan.name,
            "phase": "tune" if tuning else "main",
        },
    )
    model["export_dir"] = None
    trainer["enable_checkpointing"] = False  # a sweep resumes by run; checkpoint writes would skew the wall-clock
    trainer["callbacks"] = [cb for cb in trainer.get("callbacks", []) if "ModelCheckpoint" not in cb["class_path"]]
    for cb in trainer.get("callbacks", []):
        if cb["class_path"].endswith("HeldOutEval"):
            cb.setdefault("init_args", {}).update(
                every_n_steps=None if tuning else plan.eval_every,
                limit=plan.eval_limit,
                batch_size=plan.eval_batch_size,
            )
    return config


def heldout_callback(config: dict) -> dict | None:
    return next((cb for cb in config["trainer"].get("callbacks", []) if cb["class_path"].endswith("HeldOutEval")), None)


HELD_OUT_FIELDS = ("path", "val_path", "prompts", "val_fraction", "seed", "max_prompt_length", "tokenizer", "columns")


def initial_key(config: dict, callback: dict) -> str:
    """What the step-0 held-out score depends on: the model, the options that pick and render the held-out
    prompts, and the greedy generation budget; not the objective or the training seed (the split's seed only
    when the held-out prompts are a split). Two runs with the same key score the same initial policy alike.
    ``callback``: the config's HeldOutEval entry."""
    data = dict(config["data"]["init_args"])
    source = data.get("prompts", data.get("path"))
    if data.get("val_path") or source in TASKS:
        data.pop("seed", None)  # a held-out file: the seed does not choose it
    cb = callback["init_args"]
    key = {
        "model": config["model"]["init_args"].get("model", "smollm2"),
        "limit": cb.get("limit"),
        "max_new_tokens": cb.get("max_new_tokens", 24),
        **{k: data[k] for k in HELD_OUT_FIELDS if k in data},
    }
    return json.dumps(key, sort_keys=True)


def reuse_initial(config: dict, out: Path) -> str | None:
    """Pass a known step-0 score (``initial_scores.json``) to the run's HeldOutEval; return the run's key."""
    callback = heldout_callback(config)
    if callback is None:
        return None
    key, known = initial_key(config, callback), out / "initial_scores.json"
    scores = json.loads(known.read_text()) if known.exists() else {}
    if key in scores:
        callback["init_args"]["initial"] = scores[key]
    return key


def remember_initial(key: str | None, record: dict, out: Path) -> None:
    known = out / "initial_scores.json"
    scores = json.loads(known.read_text()) if known.exists() else {}
    if key is not None and key not in scores and record["history"] and record["history"][0][0] == 0:
        scores[key] = record["history"][0][1]
        known.write_text(json.dumps(scores, indent=1))


def run_one(plan: Plan, arm: Arm, seed: int, out: Path, store: str, runs: str = "runs") -> dict:
    """Train one (arm, seed) in a child process under ``out/<runs>``; ``result.json`` is written last, so its
    presence means done."""
    run_dir = out / runs / arm.name / f"seed{seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    config = run_config(plan, arm, seed, run_dir.resolve(), store, tuning=runs == "tune", out=out)
    key = reuse_initial(config, out)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    start = time.perf_counter()
    with open(run_dir / "log.txt", "w", encoding="utf-8") as log:
        proc = subprocess.run(
            [*_FIT, "--config", str(run_dir / "config.yaml")],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
    heldout = run_dir / "heldout.json"
    record = json.loads(heldout.read_text()) if heldout.exists() else {"history": [], "final_rollout_metrics": {}}
    if proc.returncode == 0:
        remember_initial(key, record, out)
    for per_prompt in ("final_answers", "initial_scores"):  # stay in heldout.json (read by the per-prompt readings)
        record.pop(per_prompt, None)
    result = {
        "arm": arm.name,
        "seed": seed,
        "status": "ok" if proc.returncode == 0 else "failed",
        "returncode": proc.returncode,
        "wall_s": time.perf_counter() - start,
        "steps": arm.steps or plan.steps,
        "lr": config["trainer"]["logger"]["init_args"]["tags"]["lr"],
        **record,
    }
    (run_dir / "result.json").write_text(json.dumps(result, indent=1))
    return result


class Sweep:
    """Runs jobs that have no ``result.json`` yet, at most ``max_runs`` in all, with a progress line and ETA."""

    def __init__(self, plan: Plan, out: Path, max_runs: int | None) -> None:
        self.plan, self.out, self.max_runs = plan, out, max_runs
        self.store = f"sqlite:///{(out / 'mlflow.db').resolve()}"
        self.durations: list[float] = []

    def done(self, runs: str, arm: Arm, seed: int) -> bool:
        return (self.out / runs / arm.name / f"seed{seed}" / "result.json").exists()

    def run(self, jobs: list[tuple[Arm, int]], runs: str) -> bool:
        """Run the missing jobs; True when every job of the list has finished."""
        for i, (arm, seed) in enumerate(jobs, 1):
            if self.done(runs, arm, seed):
                continue
            if self.max_runs is not None and len(self.durations) >= self.max_runs:
                return False
            left = sum(not self.done(runs, a, s) for a, s in jobs[i - 1 :])
            eta = f"{statistics.fmean(self.durations) * left / 60:.0f} min" if self.durations else "?"
            print(f"[{runs} {i}/{len(jobs)}] {arm.name} seed {seed}  (ETA of this phase {eta})", flush=True)
            result = run_one(self.plan, arm, seed, self.out, self.store, runs)
            self.durations.append(result["wall_s"])
            print(f"    {result['status']} in {result['wall_s']:.0f} s", flush=True)
        return True


def choose_lrs(plan: Plan, out: Path) -> dict[str, float] | None:
    """Per tuned arm, the lr with the best final validation score (failed runs never win; ties: the smaller lr);
    written to ``tuning.json``. None while a tuning run is missing."""
    tune = plan.tune
    if tune is None:
        raise ValueError(f"plan {plan.name!r} has no tune section: there is no learning rate to choose")
    table: dict[str, dict[float, float | None]] = {}
    chosen: dict[str, float] = {}
    for arm, lr in tune.jobs({a.name: a for a in plan.arms}):
        path = out / "tune" / arm.name / f"seed{tune.seed}" / "result.json"
        if not path.exists():
            return None
        result = json.loads(path.read_text())
        ok = result["status"] == "ok" and result["history"]
        table.setdefault(arm.name.rsplit("/lr", 1)[0], {})[lr] = result["history"][-1][1] if ok else None
    for name, scores in table.items():
        chosen[name] = max(sorted(scores), key=lambda lr: -1.0 if (s := scores[lr]) is None else s)
    arms = {n: {"scores": {f"{lr:g}": v for lr, v in t.items()}, "chosen": chosen[n]} for n, t in table.items()}
    for name, entry in arms.items():
        if (edge := grid_edge(chosen[name], sorted(table[name]))) is not None:
            entry["edge"] = edge
            print(
                f"warning: tuned arm {name!r} chose lr {chosen[name]:g}, the {edge} edge of its grid: a value "
                "beyond it may be better (widen tune.lrs)"
            )
    tuning = {"seed": tune.seed, "validation": tune.validation, "arms": arms}
    (out / "tuning.json").write_text(json.dumps(tuning, indent=1))
    return chosen


def grid_edge(chosen: float, lrs: list[float]) -> str | None:
    """``"low"`` or ``"high"`` when ``chosen`` is the smallest or largest of a grid of 3 or more sorted ``lrs``."""
    if len(lrs) < 3:
        return None
    return "low" if chosen == lrs[0] else "high" if chosen == lrs[-1] else None


def prepare_command(step: dict, output: Path, out: Path) -> list[str]:
    """A prepare step's command: ``{output}`` is its output path, ``{out}`` the results directory (for the files of
    earlier steps); ``hl-lightning*`` and ``python`` are this environment's."""
    command = [str(part).replace("{output}", str(output)).replace("{out}", str(out)) for part in step["command"]]
    if command[0].startswith("hl-lightning"):  # the console scripts of this environment
        command[0] = str(Path(sys.executable).with_name(command[0]))
    elif command[0] == "python":
        command[0:1] = [sys.executable, *(["-P"] if sys.version_info >= (3, 11) else [])]
    return command


def _not_needed(plan: Plan, step: dict, out: Path) -> bool:
    """A step with ``only_for: [later steps]`` (e.g. a model that only serves to sample a data set) is not needed
    once every one of those steps' outputs exists."""
    later = step.get("only_for") or []
    return bool(later) and all((out / plan.prepare[name]["output"]).exists() for name in later)


def prepare(plan: Plan, out: Path) -> None:
    """Make each missing ``prepare`` output, in the plan's order (a step may read the outputs of earlier ones),
    logging to ``<output>.log``; a step whose command succeeds without making its output is an error."""
    for name, step in plan.prepare.items():
        output = out / step["output"]
        if output.exists() or _not_needed(plan, step, out):
            continue
        output.parent.mkdir(parents=True, exist_ok=True)
        command = prepare_command(step, output, out)
        print(f"[prepare] {name}: {' '.join(command)}", flush=True)
        with open(f"{output}.log", "w", encoding="utf-8") as log:
            proc = subprocess.run(
                command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"}
            )
        if proc.returncode != 0 or not output.exists():
            if output.is_file():
                output.unlink()
            why = f"exit {proc.returncode}" if proc.returncode else f"it did not write {output}"
            raise SystemExit(f"prepare step {name!r} failed ({why}); see {output}.log")


def run_plan(plan: Plan, out: Path, max_runs: int | None = None) -> list[dict]:
    """Tune the learning rates (if the plan says so), then run every (arm, seed) without a ``result.json`` (a
    finished run is never rerun; an interrupted one restarts), at most ``max_runs`` runs in all; print
    ``[phase i/n] arm seed s ... ETA``; return every main result so far."""
    out.mkdir(parents=True, exist_ok=True)
    if max_runs != 0:
        prepare(plan, out)
    sweep = Sweep(plan, out, max_runs)
    chosen: dict[str, float] | None = {}
    if plan.tune is not None:
        tuning = [(arm, plan.tune.seed) for arm, _ in plan.tune.jobs({a.name: a for a in plan.arms})]
        sweep.run(tuning, "tune")
        chosen = choose_lrs(plan, out)
    if chosen is not None:
        sweep.run(plan.jobs(chosen), "runs")
    return [json.loads(p.read_text()) for p in sorted((out / "runs").glob("**/seed*/result.json"))]
