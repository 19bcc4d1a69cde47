"""Rewards users write, as docs/guides/online.md's "Writing a reward" shows them, run from a user project outside the
repository.

The page's ``my_rewards.py`` (a function reward and a ``Reward`` subclass that reads the ``answer`` column) is
written into ``tmp_path``, the user's project directory. From Python: a function, a class, an instance, an
import path and a ``class_path`` dict are accepted, tried once at construction, and the function scores the
rollouts of a real fit. From YAML: ``python -m hl_lightning fit`` with the page's ``reward:`` block in a tiny
online smoke config, run in that directory; the console script, which does not import from it, fails with one
line naming the module, the working directory and the fix.
"""

from __future__ import annotations

import csv
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hl_lightning.configs_compose import compose
from hl_lightning.modules import GRPOModule
from hl_lightning.rewards import CallableReward, RewardError, RewardImportError, WeightedSum
from tests.helpers import trainer
from tests.online.helpers import GenerateSpy, adamw, online_data

REPO = Path(__file__).resolve().parents[2]
SECTION = (REPO / "docs" / "guides" / "online.md").read_text().split("## Writing a reward", 1)[1].split("\n## ", 1)[0]
MODULE = re.search(r"```python\n(.*?)```", SECTION, re.S).group(1)
REWARD_YAML = yaml.safe_load(re.search(r"```yaml\n(.*?)```", SECTION, re.S).group(1))["data"]["init_args"]


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A user project directory with the page's my_rewards.py, importable as it is from there with python -m."""
    (tmp_path / "my_rewards.py").write_text(MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_rewards", raising=False)
    return importlib.import_module("my_rewards")


def test_every_kind_of_reward_from_python_is_accepted_and_tried(project):
    answer = project.ContainsAnswer(correct=2.0)
    for given in (project.brevity, "my_rewards:brevity", "my_rewards.brevity"):
        reward = online_data(reward=given).reward
        assert isinstance(reward, CallableReward) and reward.fn is project.brevity
        assert reward.score(["p", "p"], ["", "x" * 10], answer=[1, 1]) == [1.0, 0.75]
    assert online_data(reward=answer).reward is answer
    dict_form = {"class_path": "my_rewards.ContainsAnswer", "init_args": {"correct": 2.0}}
    for given in (dict_form, project.ContainsAnswer):
        reward = online_data(reward=given).reward
        assert isinstance(reward, project.ContainsAnswer)
        assert reward.score(["2 + 2?"] * 2, ["It is 4.", "It is 5."], answer=[4, 4]) == [reward.correct, 0.0]
    both = online_data(reward=WeightedSum([project.brevity, answer], weights=[0.1, 1.0])).reward
    assert both.score(["2 + 2?"], ["4"], answer=[4]) == [pytest.approx(0.1 * (1 - 1 / 40) + 2.0)]


def test_a_function_reward_scores_the_rollouts_of_a_fit(project, monkeypatch, tmp_path):
    spy = GenerateSpy()
    monkeypatch.setattr("hl_lightning.online.rollout.generate", spy)
    fitted = trainer(1, [], tmp_path)
    fitted.fit(GRPOModule(model="tiny-random", optimizer=adamw()), datamodule=online_data(reward=project.brevity))
    texts = [text for call in spy.calls for text in call["out"].texts]
    expected = sum(project.brevity([], texts)) / len(texts)
    assert fitted.callback_metrics["reward/mean"].item() == pytest.approx(expected, rel=1e-6)


def _wrong_return(prompts, completions):
    return 1.0


def _needs_gold(prompts, completions, gold):
    return [float(gold[0] in c) for c in completions]


@pytest.mark.parametrize(
    ("reward", "error", "message"),
    [
        (lambda completions: [1.0], TypeError, r"has the signature \(completions\), but a reward is called as"),
        (
            _wrong_return,
            RewardError,
            r"Reward '.*_wrong_return' \(CallableReward\) failed a trial call on the first prompt of .*prompts_train"
            r".jsonl .*RewardError: .*returned a float",
        ),
        (_needs_gold, RewardError, r"the columns \['answer'\]: TypeError: .*missing 1 required .*'gold'"),
        (3, TypeError, r"reward=3 is not a reward: pass a Reward, a function"),
    ],
)
def test_a_wrong_reward_fails_at_construction(reward, error, message):
    with pytest.raises(error, match=message) as err:
        online_data(reward=reward)
    assert "\n" not in str(err.value)


def test_an_unimportable_reward_names_the_module_the_directory_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RewardImportError, match=rf"no module 'no_such_rewards' .*\(working directory {tmp_path}\)"):
        online_data(reward="no_such_rewards:f")
    (tmp_path / "no_such_rewards.py").write_text("")
    with pytest.raises(RewardImportError, match=r"no_such_rewards.py is in the working directory .*`PYTHONPATH=\."):
        online_data(reward={"class_path": "no_such_rewards.Missing"})


def _config(tmp_path: Path, reward) -> Path:
    """The online GRPO smoke config (tiny-random, 2 steps) with this reward, logging to a CSV file."""
    config = compose(REPO / "configs" / "smoke" / "online_grpo.yaml")
    config["trainer"].update(callbacks=[], enable_checkpointing=False, default_root_dir=str(tmp_path / "out"))
    config["trainer"]["logger"] = {
        "class_path": "lightning.pytorch.loggers.CSVLogger",
        "init_args": {"save_dir": str(tmp_path / "logs"), "name": "run"},
    }
    config["model"]["init_args"]["export_dir"] = None
    config["data"]["init_args"].update(prompts=REWARD_YAML["prompts"], reward=reward)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "HOME": str(cwd)}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("reward", [REWARD_YAML["reward"], "my_rewards.brevity"], ids=["class", "function"])
def test_yaml_rewards_from_a_user_project_with_python_m(project, tmp_path, reward):
    out = _run([sys.executable, "-m", "hl_lightning", "fit", "--config", str(_config(tmp_path, reward))], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    with open(next((tmp_path / "logs").rglob("metrics.csv"))) as f:
        logged = [row for row in csv.DictReader(f) if row.get("reward/mean")]
    assert [int(row["step"]) for row in logged] == [0, 1]  # both steps scored by the user's reward
    top = 2.0 if isinstance(reward, dict) else 1.0  # ContainsAnswer(correct=2.0), brevity <= 1
    assert all(0.0 <= float(row["reward/mean"]) <= top for row in logged)


@pytest.mark.parametrize(
    ("reward", "named"),
    [
        (REWARD_YAML["reward"], "'my_rewards'"),  # jsonargparse imports a class_path while parsing
        ("my_rewards.brevity", "the reward 'my_rewards.brevity'"),  # a function path: imported by the data module
    ],
    ids=["class", "function"],
)
def test_the_console_script_names_the_module_the_directory_and_the_fix(project, tmp_path, reward, named):
    script = Path(sys.executable).parent / "hl-lightning"
    out = _run([str(script), "fit", "--config", str(_config(tmp_path, reward))], tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-3000:]
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    named = re.escape(named)
    assert len(errors) == 1 and re.fullmatch(
        rf"error: [Cc]annot import {named}: my_rewards.py is in the working directory {tmp_path}, but this process "
        r"does not import from it \(the hl-lightning console script does not\); run from the directory that holds "
        r"my_rewards.py with `PYTHONPATH=. hl-lightning ...` or `python -m hl_lightning ...`, or install your "
        r"project \(pip install -e .\)",
        errors[0],
    ), out.stderr[-3000:]
