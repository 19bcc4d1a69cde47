"""The package as a user gets it, used from the user's own directory, which holds packages of its own named
``callbacks`` and ``data`` (and, for the sweep, a ``yaml.py``): a built wheel and the editable install each import
as ``hl_lightning`` alone, never touch the user's modules, and train."""

import ast
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
WHEEL_SOURCES = ("pyproject.toml", "README.md", "hl_lightning", "callbacks", "configs")  # what the wheel is built from
USER_PACKAGE = 'import pathlib\npathlib.Path(__file__).parent.with_name("imported-{0}").touch()\nMINE = "user {0}"\n'
CHECK = """
import json, sys
import hl_lightning
light = "torch" not in sys.modules
from hl_lightning.callbacks import RefSyncCallback
import callbacks, data
print(json.dumps({"file": hl_lightning.__file__, "version": hl_lightning.__version__, "light": light,
                  "ref_sync": RefSyncCallback.__module__, "user": [callbacks.MINE, data.MINE]}))
"""


def run(args: list, cwd: Path, pythonpath: str | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``args`` in ``cwd`` with ``PYTHONPATH=pythonpath`` (unset when None), offline; fail with its output."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"HF_HUB_OFFLINE": "1"}
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    proc = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The wheel built from a clean copy of the sources, installed with ``pip install --no-deps --target``."""
    tmp = tmp_path_factory.mktemp("wheel")
    (tmp / "src").mkdir()
    for name in WHEEL_SOURCES:  # a clean copy: no stale build/ folder of the repository can reach the wheel
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, tmp / "src" / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(REPO / name, tmp / "src" / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", tmp / "dist", tmp / "src"], tmp)
    (wheel,) = (tmp / "dist").glob("hl_lightning-*.whl")
    run([*pip, "install", "--no-deps", "--target", tmp / "site", wheel], tmp)
    return tmp / "site"


@pytest.fixture
def user_dir(tmp_path) -> Path:
    """A user's project directory, outside the repository, with its own ``callbacks`` and ``data`` packages."""
    home = tmp_path / "project"
    for name in ("callbacks", "data"):
        (home / name).mkdir(parents=True)
        (home / name / "__init__.py").write_text(USER_PACKAGE.format(name))
    return home


def untouched(home: Path) -> bool:
    """True when no user module of ``home`` was imported."""
    return not list(home.glob("imported-*"))


def test_the_main_names_import_from_the_top_package():
    """Each name of ``hl_lightning.__all__`` is its subpackage's object, and type checkers see it too."""
    import hl_lightning

    for name in set(hl_lightning.__all__) - {"__version__"}:
        package = importlib.import_module(hl_lightning._SOURCE[name])
        assert getattr(hl_lightning, name) is getattr(package, name) and name in dir(hl_lightning)
    with pytest.raises(AttributeError, match="has no attribute 'DPOModul'"):
        _ = hl_lightning.DPOModul
    tree = ast.parse((REPO / "hl_lightning" / "__init__.py").read_text())
    (checking,) = [node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"]
    typed = {alias.name for node in checking.body for alias in node.names}
    assert typed == set(hl_lightning._SOURCE) == set(hl_lightning.__all__) - {"__version__"}
    models = importlib.import_module("hl_lightning.models")
    assert {"load_causal_lm", "load_tokenizer", "completion_logps", "generate"} <= set(models.__all__)


def test_the_wheel_holds_hl_lightning_alone_with_optional_extras(site):
    dist_info = [p for p in site.iterdir() if p.name.endswith(".dist-info")]
    assert {p.name for p in site.iterdir()} == {"hl_lightning", "bin", dist_info[0].name}
    assert all(p.name.startswith("hl-lightning") for p in (site / "bin").iterdir())  # console scripts only
    assert (site / "hl_lightning" / "callbacks" / "ref_sync.py").exists()
    assert (site / "hl_lightning" / "configs" / "smoke" / "dpo.yaml").exists()
    metadata = (dist_info[0] / "METADATA").read_text()
    extras = set(re.findall(r"^Provides-Extra: (\S+)$", metadata, re.M))
    assert {"sentiment", "embedded", "plots", "all"} <= extras
    for package, extra in (("vaderSentiment", "sentiment"), ("gguf", "embedded"), ("matplotlib", "plots")):
        (requirement,) = re.findall(rf"^Requires-Dist: {package}\b.*$", metadata, re.M)
        assert f'extra == "{extra}"' in requirement


def test_the_wheel_imports_beside_the_user_s_packages(site, user_dir):
    proc = run([sys.executable, "-c", CHECK], user_dir, pythonpath=f"{site}{os.pathsep}{user_dir}")
    seen = json.loads(proc.stdout.splitlines()[-1])
    assert Path(seen["file"]).is_relative_to(site)  # the wheel, not the editable install of this repository
    assert seen["version"] == re.search(r"(?m)^Version: (\S+)$", next(site.glob("*.dist-info/METADATA")).read_text())[1]
    assert seen["light"] and seen["ref_sync"] == "hl_lightning.callbacks.ref_sync"
    assert seen["user"] == ["user callbacks", "user data"]


def test_the_wheel_trains_a_shipped_smoke_config(site, user_dir, tmp_path):
    config, env = tmp_path / "smoke.yaml", f"{site}{os.pathsep}{user_dir}"
    listed = run([sys.executable, "-m", "hl_lightning", "configs", "list"], user_dir, pythonpath=env).stdout
    assert "smoke/dpo" in listed
    run([sys.executable, "-m", "hl_lightning", "configs", "copy", "smoke/dpo", config], user_dir, pythonpath=env)
    assert yaml.safe_load(config.read_text())["data"]["init_args"]["path"] == "arithmetic"
    out = tmp_path / "run"
    fit = [sys.executable, "-m", "hl_lightning", "fit", "--config", config, f"--trainer.default_root_dir={out}"]
    fit.append(f"--trainer.logger.init_args.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}")
    proc = run(fit, user_dir, pythonpath=f"{site}{os.pathsep}{user_dir}")
    assert "Training finished." in proc.stdout and (tmp_path / "mlflow.db").exists()
    assert [step for step, _ in json.loads((out / "heldout.json").read_text())["history"]] == [0, 2]
    assert untouched(user_dir)


def test_the_editable_install_runs_the_readme_from_the_user_s_directory(user_dir):
    section = (REPO / "README.md").read_text().split("## Use it from Python", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)[1]
    script = user_dir / "train.py"  # a user's script: its directory (with callbacks/, data/) leads sys.path
    script.write_text(code + "import hl_lightning\nprint(hl_lightning.__file__)\n")
    proc = run([sys.executable, script], user_dir)
    assert Path(proc.stdout.splitlines()[-1]).is_relative_to(REPO)
    assert (user_dir / "outputs" / "my-policy" / "model.safetensors").exists()
    assert untouched(user_dir)


def test_the_editable_install_runs_a_sweep_from_the_user_s_directory(user_dir):
    """Each run's child process keeps the working directory off sys.path, as ``hl-lightning fit`` does."""
    (user_dir / "yaml.py").write_text(USER_PACKAGE.format("yaml") + "raise ImportError('the user yaml.py')\n")
    plan = {
        "name": "outside",
        "task": "arithmetic",
        "seeds": [0],
        "steps": 2,
        "eval_limit": 2,
        "bases": {"dpo": str(REPO / "configs" / "smoke" / "humanline_dpo.yaml")},
        "arms": [{"name": "humanline", "base": "dpo"}],
    }
    (user_dir.parent / "plan.yaml").write_text(yaml.safe_dump(plan))
    hl_lightning = Path(sys.executable).with_name("hl-lightning")  # the console script, as a user runs it
    run([hl_lightning, "reproduce", "--plan", user_dir.parent / "plan.yaml", "--out", "results"], user_dir)
    result = json.loads((user_dir / "results" / "runs" / "humanline" / "seed0" / "result.json").read_text())
    assert result["status"] == "ok", (user_dir / "results" / "runs" / "humanline" / "seed0" / "log.txt").read_text()
    assert untouched(user_dir)
