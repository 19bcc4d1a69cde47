"""Type-check the installed package hl_lightning with mypy, callbacks/ and configs/ included under their real names.

The repository's callbacks/ and configs/ folders install as hl_lightning.callbacks and hl_lightning.configs
(package-dir in pyproject.toml), a mapping mypy cannot follow. This script links the package's layout under
build/typecheck/, runs ``mypy -p hl_lightning`` there with the [tool.mypy] settings of pyproject.toml, and
reports each finding at the file's path in the repository.

Run: .venv/bin/python scripts/typecheck.py [mypy options]   (what `make lint` runs; exit status is mypy's)
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: mypy depends on tomli there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
TREE = ROOT / "build" / "typecheck"
PACKAGE = "hl_lightning"
LOCATION = re.compile(r"^(?P<path>[^\s:]+\.pyi?)(?P<rest>:.*)$")


def package_dirs(pyproject: Path = ROOT / "pyproject.toml") -> dict[str, str]:
    """The sub-packages that install from another folder: dotted name -> folder, from [tool.setuptools]."""
    with pyproject.open("rb") as f:
        return tomllib.load(f)["tool"]["setuptools"].get("package-dir", {})


def link_tree(root: Path = ROOT, tree: Path = TREE) -> Path:
    """Rebuild ``tree/hl_lightning`` as links to the package's files and mapped folders; return ``tree``."""
    package = tree / PACKAGE
    shutil.rmtree(package, ignore_errors=True)
    package.mkdir(parents=True)
    for entry in (root / PACKAGE).iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    for name, folder in package_dirs(root / "pyproject.toml").items():
        parent, _, leaf = name.rpartition(".")
        if parent != PACKAGE:
            raise SystemExit(f"pyproject.toml: package-dir {name!r} is not a direct sub-package of {PACKAGE}")
        (package / leaf).symlink_to(root / folder)
    return tree


def repo_path(line: str, tree: Path = TREE, root: Path = ROOT) -> str:
    """``line`` of mypy output with a linked file's path replaced by its path in the repository."""
    match = LOCATION.match(line)
    if not match or not (tree / match["path"]).exists():
        return line
    return os.path.relpath(os.path.realpath(tree / match["path"]), root) + match["rest"]


def main(argv: list[str]) -> int:
    """Run mypy on the linked package and print its findings at repository paths."""
    tree = link_tree()
    command = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml")]
    command += ["--cache-dir", str(ROOT / "build" / "mypy_cache"), "-p", PACKAGE, *argv]
    done = subprocess.run(command, cwd=tree, capture_output=True, text=True, check=False)
    sys.stderr.write(done.stderr)
    print("\n".join(repo_path(line) for line in done.stdout.splitlines()))
    return done.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
