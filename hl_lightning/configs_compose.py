"""Config composition: a YAML file may start with ``extends:``, a list of YAML files it builds on.

::

    # configs/humanline/dpo.yaml
    extends: [../dpo.yaml, ../layers/humanline.yaml]   # paths relative to this file, merged in order
    trainer:
      default_root_dir: outputs/humanline-dpo          # this file's own content goes on top

The merge rule, applied file by file:

- mappings merge key by key, recursively (a layer that changes a ``class_path`` keeps the ``init_args`` it does
  not set: the options of a base class carry over, as on LightningCLI's command line);
- scalars and lists are replaced, except ``trainer.callbacks``, which merges by class: an entry whose class is
  already in the list merges into that entry (its ``init_args`` update the old ones), a new class is appended, and
  ``{class_path: <class>, remove: true}`` drops the callback of that class.

``hl-lightning fit --config FILE`` composes FILE before LightningCLI parses it; ``hl-lightning configs copy`` writes
a shipped config flattened. With your own LightningCLI, compose the same way::

    from hl_lightning.configs_compose import compose, compose_args
    sys.argv[1:] = compose_args(sys.argv[1:])      # every --config FILE that extends others, composed
    cli = MyCLI(MyModule, MyData)
    flat = compose("configs/humanline/dpo.yaml")   # or one file, as a plain dict
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import yaml

EXTENDS = "extends"
REMOVE = "remove"


class ConfigError(ValueError):
    """A config that cannot be composed; the message names the file."""


def class_name(class_path: str) -> str:
    """``RefSyncCallback`` of ``hl_lightning.callbacks.RefSyncCallback`` (a bare class name is its own name)."""
    return class_path.rsplit(".", 1)[-1]


def find_callback(callbacks: list[dict], name: str) -> dict | None:
    """The entry of ``callbacks`` whose class is ``name`` (a class name or a full ``class_path``), or None."""
    return next((cb for cb in callbacks if class_name(cb["class_path"]) == class_name(name)), None)


def merge_callbacks(base: list[dict], layer: list[dict], where: str = "config") -> list[dict]:
    """``base`` with ``layer``'s entries merged by class (see the module docstring); ``where`` names the layer in
    errors. Neither list is changed."""
    out = [(True, copy.deepcopy(cb)) for cb in base]  # (inherited from the list it extends, entry)
    for entry in layer:
        if not isinstance(entry, dict) or not isinstance(entry.get("class_path"), str):
            raise ConfigError(f"{where}: every trainer.callbacks entry needs a class_path; got {entry!r}")
        name = class_name(entry["class_path"])
        same = [i for i, (inherited, cb) in enumerate(out) if inherited and class_name(cb["class_path"]) == name]
        if len(same) > 1:
            raise ConfigError(
                f"{where}: trainer.callbacks names {name}, of which the list it extends has {len(same)}; "
                f"merging by class cannot tell them apart: write that list in one file"
            )
        own = {k: v for k, v in entry.items() if k != REMOVE}
        if entry.get(REMOVE):
            out = [item for i, item in enumerate(out) if i not in same]
        elif same:
            out[same[0]] = (True, merge(out[same[0]][1], own, where))
        else:
            out.append((False, copy.deepcopy(own)))
    return [cb for _, cb in out]


def merge(base: dict, layer: dict, where: str = "config", path: str = "") -> dict:
    """A new dict: ``layer`` merged onto ``base`` by the rule of the module docstring (``where`` names ``layer`` in
    errors; ``path`` is the dotted key of this level)."""
    out = copy.deepcopy(base)
    for key, value in layer.items():
        here = f"{path}.{key}" if path else str(key)
        old = out.get(key)
        if here == "trainer.callbacks" and isinstance(value, list):
            out[key] = merge_callbacks(old if isinstance(old, list) else [], value, where)
        elif isinstance(old, dict) and isinstance(value, dict):
            out[key] = merge(old, value, where, here)
        else:
            out[key] = copy.deepcopy(value)
    return {"class_path": out.pop("class_path"), **out} if "class_path" in out else out  # it reads first


def _read(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the config ({err.strerror})") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: a config is a YAML mapping (trainer:, model:, data: ...); got {type(data).__name__}"
        )
    return data


def compose(path: str | os.PathLike) -> dict:
    """The config of the YAML file ``path`` as a plain dict, with every file it ``extends`` merged in (recursively;
    see the module docstring); a file without ``extends`` is returned as it is. Raises ``ConfigError`` (a
    ``ValueError``) naming the file for a missing file, a cycle, or ``extends`` that is not a list of paths."""
    return _compose(Path(path), ())


def _compose(path: Path, chain: tuple[Path, ...]) -> dict:
    if path.resolve() in chain:
        cycle = " -> ".join(str(p) for p in (*chain, path.resolve()))
        raise ConfigError(f"{chain[-1]}: extends makes a cycle ({cycle}); a file cannot build on itself")
    own = _read(path)
    parents = own.pop(EXTENDS, [])
    if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
        raise ConfigError(
            f"{path}: extends must be a list of YAML files relative to this file, e.g. [../base.yaml]; got {parents!r}"
        )
    out: dict = {}
    for parent in parents:
        target = path.parent / parent
        if not target.is_file():
            raise ConfigError(
                f"{path}: extends {parent!r}, which does not exist ({target}); paths are relative to {path.parent}"
            )
        out = merge(out, _compose(target, (*chain, path.resolve())), str(target))
    return merge(out, own, str(path))


def _is_composed(value: str) -> bool:
    """True when ``value`` is a YAML file that starts a composition (has ``extends``)."""
    try:
        is_file = Path(value).is_file()
    except (OSError, ValueError):  # YAML text given inline (too long or odd for a file name)
        return False
    return is_file and EXTENDS in _read(Path(value))


def compose_args(args: list[str], composed: list[str] | None = None) -> list[str]:
    """``args`` with each ``--config FILE`` / ``--config=FILE`` / ``-c FILE`` whose FILE uses ``extends`` replaced
    by the composed config (as YAML text, which LightningCLI's ``--config`` accepts); every other argument, and a
    config without ``extends``, passes through untouched. The composed FILEs are appended to ``composed``."""
    out = list(args)
    for i, arg in enumerate(args):
        inline = arg.startswith("--config=")
        if not inline and not (i > 0 and args[i - 1] in ("--config", "-c")):
            continue
        value = arg.split("=", 1)[1] if inline else arg
        if _is_composed(value):
            text = yaml.safe_dump(compose(value), sort_keys=False)
            out[i] = f"--config={text}" if inline else text
            if composed is not None:
                composed.append(value)
    return out
