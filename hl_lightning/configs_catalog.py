"""``hl-lightning configs list`` and ``hl-lightning configs copy NAME DEST``: the configs shipped in the package.

``list`` prints every runnable config (``humanline/dpo``, ``smoke/dpo``, ...) with its first comment line.
``copy`` writes one of them flattened (every file it ``extends`` merged in) to DEST, a config of your own to edit
and run with ``hl-lightning fit --config DEST``. The shared layers (``layers/``) and the sweep plans
(``reproduce/``) are not runnable by themselves and are not listed.
"""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import as_file, files
from pathlib import Path

import yaml

from hl_lightning.configs_compose import compose

NOT_RUNNABLE = ("layers", "reproduce")  # shared layers and sweep plans


@contextmanager
def shipped_root() -> Iterator[Path]:
    """The folder of the shipped configs (``hl_lightning.configs``) as a real path, from any kind of install."""
    with as_file(files("hl_lightning.configs")) as root:
        yield Path(root)


def runnable(root: Path) -> dict[str, Path]:
    """``{name: file}`` of the runnable configs under ``root`` (``humanline/dpo`` -> ``humanline/dpo.yaml``)."""
    found = {}
    for path in sorted(root.rglob("*.yaml")):
        relative = path.relative_to(root)
        if relative.parts[0] not in NOT_RUNNABLE:
            found[relative.with_suffix("").as_posix()] = path
    return found


def description(path: Path) -> str:
    """The first comment line of ``path``, without its ``#``."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
    return ""


def listing(root: Path) -> str:
    """One line per runnable config: its name, then its description."""
    configs = runnable(root)
    width = max(len(name) for name in configs)
    return "\n".join(f"{name:<{width}}  {description(path)}" for name, path in configs.items())


def find(root: Path, name: str) -> Path:
    """The file of the runnable config ``name`` (``humanline/dpo``; a ``.yaml`` ending is allowed)."""
    configs = runnable(root)
    key = name.removesuffix(".yaml").removeprefix("configs/")
    if key not in configs:
        close = difflib.get_close_matches(key, list(configs), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ValueError(f"no shipped config {name!r}; {hint}`hl-lightning configs list` shows them all")
    return configs[key]


def flattened(root: Path, name: str) -> str:
    """The YAML text of the config ``name`` composed, under a comment saying where it came from."""
    path = find(root, name)
    source = path.relative_to(root).as_posix()
    header = [
        f"# {description(path)}",
        f"# hl_lightning's shipped config {path.relative_to(root).with_suffix('').as_posix()} (configs/{source}),",
        "# flattened: every file it extends is merged in. Edit freely; run: hl-lightning fit --config <this file>",
    ]
    return "\n".join(header) + "\n" + yaml.safe_dump(compose(path), sort_keys=False)


def copy_config(name: str, dest: str | Path, force: bool = False) -> Path:
    """Write the shipped config ``name`` flattened to ``dest``; an existing ``dest`` is refused unless ``force``."""
    dest = Path(dest)
    with shipped_root() as root:
        text = flattened(root, name)
    if dest.exists() and not force:
        raise ValueError(f"{dest} exists; pass --force to overwrite it (or name another file)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(text, encoding="utf-8")
    return dest


def _list(options: argparse.Namespace) -> None:
    with shipped_root() as root:
        print(listing(root))


def _copy(options: argparse.Namespace) -> None:
    written = copy_config(options.name, options.dest, options.force)
    print(f"Wrote {written} (from {options.name}); run it: hl-lightning fit --config {written}")


def main(args: list[str]) -> None:
    """The ``configs`` subcommand of ``hl-lightning``."""
    parser = argparse.ArgumentParser(prog="hl-lightning configs", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="the runnable shipped configs, each with its description").set_defaults(run=_list)
    copy = commands.add_parser("copy", help="write a shipped config, flattened, to a file of your own")
    copy.add_argument("name", help="a name from `hl-lightning configs list`, e.g. humanline/dpo")
    copy.add_argument("dest", help="the file to write, e.g. my_dpo.yaml")
    copy.add_argument("--force", action="store_true", help="overwrite DEST if it exists")
    copy.set_defaults(run=_copy)
    options = parser.parse_args(args)
    options.run(options)
