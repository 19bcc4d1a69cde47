"""The study's data sources and readings: the prompt pool, templated rows for any prompts, groups rebuilt as pairs,
prepare commands, per-arm run lengths, the data-quality table and head-to-head win-rates by hand, and every prepare
step of configs/reproduce/study.yaml run on the tiny model."""

import importlib
import json
import random
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from unittest.mock import patch

import pytest
import yaml

from hl_lightning.cli import main as cli_main
from hl_lightning.data import arithmetic
from hl_lightning.data.arithmetic import is_correct, parse_question, pool_rows, templated_like
from hl_lightning.online import GroupBuilder, PairBuilder
from hl_lightning.online.rebuild import rebuild_dataset, rebuild_rows
from hl_lightning.online.sample_dataset import main as sample_main
from hl_lightning.reproduce import Plan, runner
from hl_lightning.reproduce.aggregate import compare, curve_table, difference, summarize_arm
from hl_lightning.reproduce.readings import (
    Paired,
    data_quality_table,
    final_values,
    head_to_head,
    mean_gap,
    paired_win_rate,
    two_level,
    win_share,
)
from hl_lightning.reproduce.runner import prepare, prepare_command, run_config

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "hl_lightning" / "data" / "arithmetic"


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_prompt_pool_is_every_question_outside_the_held_out_set():
    pool, test, train = (read(DATA / f"prompts_{s}.jsonl") for s in ("pool", "test", "train"))
    prompts = {row["prompt"] for row in pool}
    assert len(prompts) == len(pool) == 2 * 49 * 49 + 15 * 15 - 400  # every distinct question but the 400 held out
    assert not prompts & {row["prompt"] for row in test}
    assert {row["prompt"] for row in train} <= prompts
    assert all(row["answer"] == eval(row["prompt"][8:-1]) for row in pool[:50])  # "What is a op b?"
    assert pool == pool_rows(test, seed=0) == arithmetic.make_rows()["prompts_pool"]  # the shipped file regenerates


def test_templated_rows_for_other_prompts_keep_their_order_and_answers():
    rows = [{"prompt": "What is 12 + 7?"}, {"prompt": "What is 3 * 4?"}, {"prompt": "What is 12 + 7?"}]
    pairs = templated_like(rows, "pairs", seed=1)
    assert [p["prompt"] for p in pairs] == ["What is 12 + 7?", "What is 3 * 4?"]  # a repeated prompt once
    assert [p["answer"] for p in pairs] == [19, 12]
    assert all(is_correct(p["chosen"], p["answer"]) and not is_correct(p["rejected"], p["answer"]) for p in pairs)
    groups = templated_like(rows, "groups")
    assert all(len(g["completions"]) == 4 and sorted(set(g["rewards"])) == [0.0, 1.0] for g in groups)
    assert parse_question(" What is 40 - 2? ") == (40, "-", 2)
    with pytest.raises(ValueError, match=r"^'Tell me a joke' is not an arithmetic question"):
        parse_question("Tell me a joke")


def test_groups_rebuild_as_best_vs_worst_pairs_and_uniform_groups_drop(tmp_path):
    groups = [
        {"prompt": "q1", "completions": ["a", "b", "c", "d"], "rewards": [0.0, 1.0, 0.0, 1.0], "answer": 1},
        {"prompt": "q2", "completions": ["e", "f", "g", "h"], "rewards": [0.0, 0.0, 0.0, 0.0], "answer": 2},
    ]
    rows, dropped = rebuild_rows(groups, PairBuilder())
    assert dropped == 1 and rows == [
        {"prompt": "q1", "chosen": "b", "rejected": "a", "chosen_score": 1.0, "rejected_score": 0.0, "answer": 1}
    ]
    assert GroupBuilder(drop_uniform=True).trl_rows({"prompt": "q2"}, ["e", "f"], [0.0, 0.0]) == []
    assert GroupBuilder().trl_rows({"prompt": "q2"}, ["e", "f"], [0.0, 0.0]) != []  # online default: kept
    assert GroupBuilder(drop_uniform=True).unit([1], [[2], [3]], [1.0, 1.0]) is None
    source = tmp_path / "groups.jsonl"
    source.write_text("".join(json.dumps(g) + "\n" for g in groups))
    Path(f"{source}.meta.json").write_text(json.dumps({"model": "m"}))
    out = rebuild_dataset(str(source), str(tmp_path / "pairs.jsonl"), PairBuilder())
    assert read(out) == rows
    meta = json.loads(Path(f"{out}.meta.json").read_text())
    assert meta["groups_meta"] == {"model": "m"} and meta["dropped_groups"] == 1 and meta["rows"] == 1


def test_prepare_commands_see_the_results_directory_and_a_step_must_make_its_output(tmp_path):
    command = prepare_command({"command": ["python", "-m", "x", "{out}/a.jsonl", "{output}"]}, tmp_path / "o", tmp_path)
    assert command[0] == sys.executable and command[-2:] == [f"{tmp_path}/a.jsonl", str(tmp_path / "o")]
    plan = Plan.load(study_like(tmp_path, prepare={"nothing": {"output": "x.txt", "command": ["python", "-c", "1"]}}))
    with pytest.raises(SystemExit, match=r"prepare step 'nothing' failed \(it did not write .*x.txt\)"):
        prepare(plan, tmp_path / "out")


def study_like(tmp_path: Path, **changes) -> Path:
    plan = {
        "name": "tiny",
        "seeds": [0],
        "steps": 2,
        "bases": {"dpo": str(REPO / "configs" / "smoke" / "humanline_dpo.yaml")},
        "arms": [{"name": "long", "base": "dpo", "steps": 5}, {"name": "short", "base": "dpo"}],
        **changes,
    }
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


def test_an_arm_may_run_longer_than_the_plan_and_an_unknown_arm_key_is_refused(tmp_path):
    plan = Plan.load(study_like(tmp_path))
    long, short = plan.arms
    assert run_config(plan, long, 0, tmp_path / "r", "sqlite:///x.db")["trainer"]["max_steps"] == 5
    assert run_config(plan, short, 0, tmp_path / "r", "sqlite:///x.db")["trainer"]["max_steps"] == 2
    with pytest.raises(ValueError, match=r"arm 'long' has unknown keys \['step'\]; an arm takes \["):
        Plan.load(study_like(tmp_path, arms=[{"name": "long", "base": "dpo", "step": 5}]))


def test_the_data_quality_table_lists_each_source_and_role(tmp_path):
    stats = dict(n=4, mean=-0.5, q1=-0.9, median=-0.4, q3=-0.2, below_worst_quartile=0.25, truncated=0.5)
    (tmp_path / "dq").mkdir()
    (tmp_path / "dq" / "a-summary.json").write_text(json.dumps({"roles": {"chosen": stats}}))
    table, found = data_quality_table(tmp_path, {"(a)": "dq/a-summary.json", "(b)": "dq/b-summary.json"})
    assert "| (a) | chosen | 4 | -0.50 | [-0.90, -0.40, -0.20] | 25% | 50% |" in table
    assert "| (b) | not measured yet (dq/b-summary.json) |" in table and list(found) == ["(a)"]


def write_answers(out: Path, arm: str, seed: int, scores: dict[str, float], **record) -> dict:
    """A run's ``heldout.json`` with these final per-prompt scores (and ``record``'s keys); its result row."""
    run = out / "runs" / arm / f"seed{seed}"
    run.mkdir(parents=True)
    answers = [{"prompt": p, "completion": "x", "score": s} for p, s in scores.items()]
    (run / "heldout.json").write_text(json.dumps({"final_answers": answers, **record}))
    final = record.get("history", [[0, 0.0], [2, sum(scores.values()) / len(scores)]])[-1]
    row = {"arm": arm, "seed": seed, "status": "ok", "history": [[0, 0.0], final], "wall_s": 10.0, "steps": 2}
    return row | {"lr": 1e-5, "final_rollout_metrics": {}}


def test_head_to_head_win_rates_pair_prompts_and_seeds_by_hand(tmp_path):
    """Seed 0: b wins p1, ties p2, loses p3 -> 0.5; seed 1: b wins both shared prompts -> 1.0; mean 0.75."""
    runs = {
        "a": [
            write_answers(tmp_path, "a", 0, {"p1": 0.1, "p2": 0.5, "p3": 0.9}),
            write_answers(tmp_path, "a", 1, {"p1": 0.0, "p2": 0.0}),
        ],
        "b": [
            write_answers(tmp_path, "b", 0, {"p3": 0.2, "p1": 0.3, "p2": 0.5}),
            write_answers(tmp_path, "b", 1, {"p1": 1.0, "p2": 1.0, "p9": 0.0}),
        ],
    }
    (row,) = head_to_head(tmp_path, {"b vs a": {"a": "a", "b": "b"}, "missing": {"a": "a", "b": "c"}}, runs)
    assert row["win_rate"] == pytest.approx(0.75) and row["seeds"] == 2
    low, high = row["ci"]
    assert 0.0 <= low < 0.75 < high <= 1.0 and row["prompts"] == 3
    assert win_share([0.3, 0.5, 0.2], [0.1, 0.5, 0.9]) == 0.5
    one = paired_win_rate(Paired([([0.0] * 10, [1.0] * 10)], crossed=True))  # b always wins: no spread
    assert one == {"win_rate": 1.0, "ci": (1.0, 1.0)}
    rng = random.Random(0)
    noisy = Paired([([rng.random() for _ in range(50)], [rng.random() for _ in range(50)]) for _ in range(3)], True)
    assert paired_win_rate(noisy)["ci"][0] < paired_win_rate(noisy)["win_rate"] < paired_win_rate(noisy)["ci"][1]


def test_two_level_ci_by_hand_resamples_seeds_then_prompts():
    """Seed 0: b beats a by 1 on every prompt; seed 1: by 0.5. No spread within a seed, so a draw's mean is 1.0
    (both draws seed 0, p = 1/4), 0.75 or 0.5 (both seed 1, p = 1/4): the 95 % CI is exactly (0.5, 1.0)."""
    seeds = [([0.0] * 4, [1.0] * 4), ([0.0] * 4, [0.5] * 4)]
    assert two_level(Paired(seeds, crossed=True), mean_gap) == (0.75, (0.5, 1.0))
    assert two_level(Paired(seeds[:1], crossed=True), mean_gap) == (1.0, (1.0, 1.0))
    one_seed = Paired([([0.0, 1.0, 0.0, 1.0] * 25, [1.0, 1.0, 0.0, 0.0] * 25)], True)  # gaps +1, 0, 0, -1
    estimate, (low, high) = two_level(one_seed, mean_gap)
    assert estimate == 0.0 and -0.17 < low < -0.11 and 0.11 < high < 0.17  # ±1.96 × sqrt(0.5 / 100) ≈ ±0.139


def test_seeds_on_the_same_questions_share_one_question_draw():
    """Three seeds with the same per-question gaps (+1, 0, 0, -1 on 100 questions): the question noise is that of
    100 questions (±0.139) however many seeds repeat them; drawing questions per seed would shrink it by √3."""
    same = [([0.0, 1.0, 0.0, 1.0] * 25, [1.0, 1.0, 0.0, 0.0] * 25)] * 3
    _, (low, high) = two_level(Paired(same, crossed=True), mean_gap)
    _, (nested_low, nested_high) = two_level(Paired(same, crossed=False), mean_gap)
    assert 0.11 < -low < 0.17 and 0.11 < high < 0.17
    assert 0.05 < -nested_low < 0.1 and 0.05 < nested_high < 0.1


def test_prompts_are_paired_between_the_arms():
    """b answers right exactly where a does, plus 5 of 100 more questions: +5 points. Paired by question the CI is
    about ±4 points and excludes 0; drawing each arm's questions on its own would give about ±13."""
    a = [1.0] * 30 + [0.0] * 70
    b = [1.0] * 35 + [0.0] * 65
    estimate, (low, high) = two_level(Paired([(a, b)], crossed=True), mean_gap)
    assert estimate == pytest.approx(0.05) and low > 0.0 and high < 0.1


def test_comparisons_take_their_ci_over_seeds_and_held_out_prompts_by_hand(tmp_path):
    """Exact match: each seed's difference is the mean per-prompt gap (seed 0: 2/3 − 1/3, seed 1: 1 − 0), mean 2/3,
    b wins both seeds, pairing each prompt with itself whatever the files' order; the CI is :func:`two_level`'s.
    Arms that answered different prompts, or a seed without answers, fall back to a CI over seeds only."""
    runs = {
        "a": [
            write_answers(tmp_path, "a", 0, {"p": 1.0, "q": 0.0, "r": 0.0}),
            write_answers(tmp_path, "a", 1, {"p": 0.0}),
        ],
        "b": [
            write_answers(tmp_path, "b", 0, {"r": 0.0, "q": 1.0, "p": 1.0}),
            write_answers(tmp_path, "b", 1, {"p": 1.0}),
        ],
    }
    (row,) = compare({"b vs a": {"a": "a", "b": "b"}}, runs, tmp_path)
    expected = two_level(Paired([([1.0, 0.0, 0.0], [1.0, 1.0, 0.0]), ([0.0], [1.0])], False), mean_gap)
    assert row["ci_over"] == "seeds x prompts" and row["paired"] == 2 and row["wins"] == 2
    assert row["diff"] == pytest.approx(2 / 3, rel=1e-12) and row["ci"] == expected[1]
    assert row["diff"] == pytest.approx(difference({0: 1 / 3, 1: 0.0}, {0: 2 / 3, 1: 1.0})["diff"], rel=1e-12)
    assert compare({"b vs a": {"a": "a", "b": "b"}}, runs)[0]["ci_over"] == "seeds"  # no results directory given
    runs["c"] = [write_answers(tmp_path, "c", 0, {"p": 1.0, "q": 1.0, "r": 0.0, "s": 1.0})]  # one more prompt
    runs["c"].append(write_answers(tmp_path, "c", 1, {"p": 1.0}))
    assert compare({"c vs a": {"a": "a", "b": "c"}}, runs, tmp_path)[0]["ci_over"] == "seeds"
    runs["d"] = [write_answers(tmp_path, "d", 0, {"p": 0.0, "q": 1.0, "r": 1.0}), {**runs["b"][1], "arm": "d"}]
    assert compare({"d vs a": {"a": "a", "b": "d"}}, runs, tmp_path)[0]["ci_over"] == "seeds"  # seed 1: no answers


def test_the_wall_clock_ratio_is_of_training_where_runs_timed_their_held_out_scoring(tmp_path):
    """a: 100 s runs with 40 s of scoring (60 s training); b: 200 s with 50 s (150 s): 2.5 of training, not 2.0 of
    whole runs; one run without ``eval_s`` makes it the whole runs' ratio again."""
    runs = {
        "a": [write_answers(tmp_path, "a", s, {"p": 0.0}) | {"wall_s": 100.0, "eval_s": 40.0} for s in range(2)],
        "b": [write_answers(tmp_path, "b", s, {"p": 1.0}) | {"wall_s": 200.0, "eval_s": 50.0} for s in range(2)],
    }
    (row,) = compare({"b vs a": {"a": "a", "b": "b"}}, runs, tmp_path)
    assert row["wall_ratio"] == 2.5 and row["wall_of"] == "training"
    assert summarize_arm(runs["b"])["train_s"] == 150.0 and summarize_arm(runs["b"])["wall_s"] == 200.0
    runs["b"][1].pop("eval_s")
    (row,) = compare({"b vs a": {"a": "a", "b": "b"}}, runs, tmp_path)
    assert row["wall_ratio"] == 2.0 and row["wall_of"] == "run" and "train_s" not in summarize_arm(runs["b"])


def test_a_one_seed_arm_is_compared_on_its_seed_and_says_so(tmp_path):
    """a ran seeds 0-2, b seed 0 only: b − a is seed 0's (1/2 − 0), not b against a's mean, with a CI over prompts."""
    runs = {"a": [write_answers(tmp_path, "a", s, {"p": float(s), "q": 0.0}) for s in range(3)]}
    runs["b"] = [write_answers(tmp_path, "b", 0, {"p": 1.0, "q": 0.0})]
    (row,) = compare({"b vs a": {"a": "a", "b": "b"}}, runs, tmp_path)
    assert row["diff"] == 0.5 and row["paired"] == 1 and row["ci_over"] == "prompts (seed 0 only)"


def test_a_win_rate_run_is_compared_by_its_wins_against_the_initial_answers(tmp_path):
    """Per prompt a win-rate run counts 1, 1/2 or 0 against the initial answer's judge score (same order as its
    answers): x wins p, ties q, loses r (0.5); y wins p and q, loses r (2/3): y − x = 1/6, as the win-rates say."""
    initial = {"metric": "win_rate", "initial_scores": [0.5, 0.5, 0.5]}
    x = write_answers(tmp_path, "x", 0, {"p": 0.9, "q": 0.5, "r": 0.1}, history=[[0, 0.5], [2, 0.5]], **initial)
    y = write_answers(tmp_path, "y", 0, {"p": 0.9, "q": 0.7, "r": 0.2}, history=[[0, 0.5], [2, 2 / 3]], **initial)
    assert final_values(tmp_path, "x", 0) == {"p": 1.0, "q": 0.5, "r": 0.0}
    (row,) = compare({"y vs x": {"a": "x", "b": "y"}}, {"x": [x], "y": [y]}, tmp_path)
    assert row["diff"] == pytest.approx(1 / 6, rel=1e-12) and row["ci_over"] == "prompts (seed 0 only)"
    write_answers(tmp_path, "w", 1, {"p": 0.9}, metric="win_rate")  # no initial scores kept
    assert final_values(tmp_path, "w", 1) is None and final_values(tmp_path, "w", 2) is None


def tiny_step(step: dict, held_out: Path) -> dict:
    """A study prepare step shrunk for the tiny random model: few prompts, 2 training steps scored on the few
    ``held_out`` prompts, a reward with spread (the tiny model never answers a question right)."""
    command = ["tiny-random" if part == "smollm2" else part for part in step["command"]]
    command = ["16" if before == "--limit" else part for before, part in zip(["", *command[:-1]], command, strict=True)]
    spread = ["hl_lightning.rewards.FormatReward", "--reward.init_args.pattern", "^[A-Z]"]
    if "hl_lightning.rewards.ExactMatchReward" in command:
        i = command.index("hl_lightning.rewards.ExactMatchReward")
        command[i : i + 1] = spread
    if command[0] == "hl-lightning-sample":
        command += [] if "--limit" in command else ["--limit", "16"]
        command += ["--sampling.max_new_tokens", "8"]
    if command[:2] == ["hl-lightning", "fit"]:
        command += ["--model.init_args.model", "tiny-random", "--trainer.max_steps", "2"]
        command += ["--data.init_args.max_new_tokens", "6", "--data.init_args.val_path", str(held_out)]
        if "arithmetic" in " ".join(command):
            command += ["--data.init_args.reward", SPREAD]
    return {**step, "command": command}


SPREAD = json.dumps({"class_path": "hl_lightning.rewards.FormatReward", "init_args": {"pattern": "^[A-Z]"}})


def in_process(command: list[str], **_) -> subprocess.CompletedProcess:
    """Run a prepare command in this process (the same entry points, without a new interpreter's imports each)."""
    name, args = Path(command[0]).name, command[1:]
    with patch.object(sys, "argv", [name]):  # LightningCLI also looks at sys.argv
        if name == "hl-lightning-sample":
            sample_main(args)
        elif name == "hl-lightning":
            cli_main(args)
        else:  # python -P -m <module> args: each of our modules has main(args)
            at = command.index("-m")
            importlib.import_module(command[at + 1]).main(command[at + 2 :])
    return subprocess.CompletedProcess(command, 0)


@pytest.mark.slow
def test_every_prepare_step_of_the_study_runs_on_the_tiny_model(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)  # the plan names shipped files relative to the repository
    monkeypatch.setattr(runner, "subprocess", SimpleNamespace(run=in_process, STDOUT=subprocess.STDOUT))
    plan = Plan.load(REPO / "configs" / "reproduce" / "study.yaml")
    held_out = tmp_path / "held_out.jsonl"  # a prompt with an answer serves both tasks' held-out scoring
    held_out.write_text("".join(json.dumps({"prompt": f"What is {i} + 1?", "answer": i + 1}) + "\n" for i in range(3)))
    plan.prepare = {name: tiny_step(step, held_out) for name, step in plan.prepare.items()}
    out = tmp_path / "study"
    prepare(plan, out)
    a_pairs, c_pairs = read(out / "data" / "a_pairs.jsonl"), read(out / "data" / "c_pairs.jsonl")
    assert a_pairs and [r["prompt"] for r in c_pairs] == [r["prompt"] for r in a_pairs]  # (c): the prompts of (a)
    assert all(len(set(g["rewards"])) > 1 for g in read(out / "data" / "a_groups.jsonl"))  # uniform groups dropped
    assert (out / "models" / "stronger_arithmetic" / "config.json").exists()
    table, found = data_quality_table(out, plan.data_quality)
    assert list(found) == list(plan.data_quality) and "not measured" not in table


def test_a_model_made_only_to_sample_is_skipped_once_its_samples_exist(tmp_path):
    make = "import pathlib, sys; pathlib.Path(sys.argv[1]).write_text('x')"
    steps = {
        "model": {"output": "m.txt", "command": ["python", "-c", make, "{output}"], "only_for": ["samples"]},
        "samples": {"output": "s.txt", "command": ["python", "-c", make, "{output}"]},
    }
    plan = Plan.load(study_like(tmp_path, prepare=steps))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "s.txt").write_text("kept")
    prepare(plan, tmp_path / "out")
    assert not (tmp_path / "out" / "m.txt").exists()  # its only use is done
    (tmp_path / "out" / "s.txt").unlink()
    prepare(plan, tmp_path / "out")
    assert (tmp_path / "out" / "m.txt").exists() and (tmp_path / "out" / "s.txt").exists()
    steps["model"]["only_for"] = ["sample"]
    with pytest.raises(ValueError, match=r"prepare step 'model': only_for names no later step: \['sample'\]"):
        Plan.load(study_like(tmp_path, prepare=steps))


def test_an_arm_row_has_its_curve_over_seeds_and_its_judge_score_by_hand():
    """Two seeds scored at steps 0, 60, 120: the curve is the per-step mean; the judge score the final mean."""
    runs = [
        {
            "arm": "x",
            "seed": s,
            "status": "ok",
            "lr": 1e-5,
            "steps": 120,
            "wall_s": 10.0,
            "final_rollout_metrics": {},
            "history": h,
            "judge_history": j,
        }
        for s, h, j in [
            (0, [[0, 0.5], [60, 0.7], [120, 0.9]], [[0, 0.1], [120, 0.3]]),
            (1, [[0, 0.5], [60, 0.5], [120, 0.6]], [[0, 0.1], [120, 0.5]]),
        ]
    ]
    row = summarize_arm(runs)
    assert row["curve"] == [[0, 0.5], [60, pytest.approx(0.6)], [120, pytest.approx(0.75)]]
    assert row["judge"] == pytest.approx(0.4) and row["judge_ci"][0] <= 0.4 <= row["judge_ci"][1]
    table = curve_table([row])
    assert "| x | 0.500 | 0.600 | 0.750 |" in table and "step 60" in table
