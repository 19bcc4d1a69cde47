"""mkdocs hooks for ``make docs``: the package's layout for the API pages, and the results figures for the
results pages.

- The repository's ``callbacks/`` folder installs as ``hl_lightning.callbacks`` (package-dir in pyproject.toml),
  a mapping mkdocstrings cannot follow (it resolves links, so the linked tree of ``make lint`` does not do): the
  package's sources are copied in their installed layout under ``build/docs/``, where the API pages read them.
- The figures of each study plan stay in ``results/<plan>/``; they are served as ``assets/results/<plan>/*.png``,
  which the generated pages ``docs/results/<plan>.md`` show.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
API_TREE = ROOT / "build" / "docs"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts.typecheck import PACKAGE, package_dirs  # noqa: E402  (the repository root is on sys.path only from here)


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    """Copy the package's sources in their installed layout to ``build/docs/`` before any API page is rendered."""
    shutil.rmtree(API_TREE / PACKAGE, ignore_errors=True)
    skip = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / PACKAGE, API_TREE / PACKAGE, ignore=skip)
    for name, folder in package_dirs(ROOT / "pyproject.toml").items():
        shutil.copytree(ROOT / folder, API_TREE.joinpath(*name.split(".")), ignore=skip)
    return config


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add every ``results/<plan>/*.png`` to the site as ``assets/results/<plan>/<name>.png``."""
    for figure in sorted((ROOT / "results").glob("*/*.png")):
        uri = f"assets/results/{figure.parent.name}/{figure.name}"
        files.append(File.generated(config, uri, abs_src_path=str(figure)))
    return files
