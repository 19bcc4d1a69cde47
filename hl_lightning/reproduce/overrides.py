"""Overrides of a plan's arms: dotted keys into a composed base config, checked before any run and applied to a
copy (``trainer.callbacks.<Class>`` addresses a callback by its class; see ``hl_lightning.reproduce.plan``)."""

from __future__ import annotations

import copy
import importlib
import inspect

from hl_lightning.configs_compose import REMOVE, find_callback, merge_callbacks

CALLBACKS = "trainer.callbacks."


def _params(class_path: str) -> set[str]:
    module, _, name = class_path.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    return {
        p
        for klass in cls.__mro__
        if "__init__" in vars(klass)
        for p in inspect.signature(klass.__init__).parameters
        if p not in ("self", "args", "kwargs")
    }


def check_key(config: dict, key: str, where: str) -> None:
    """Raise ``ValueError`` naming ``where`` and ``key`` unless ``key`` addresses an option of ``config``."""
    if key.startswith(CALLBACKS):
        name, *rest = key[len(CALLBACKS) :].split(".")
        if rest and rest[0] == "init_args" and len(rest) == 2:
            cb = find_callback(config["trainer"].get("callbacks", []), name)
            if cb is None or rest[1] in _params(cb["class_path"]):
                return
        elif not rest:
            return
        raise ValueError(
            f"{where}: unknown override {key!r} (callbacks are addressed as "
            f"trainer.callbacks.<Class> or trainer.callbacks.<Class>.init_args.<option>)"
        )
    node, parts = config, key.split(".")
    for i, part in enumerate(parts):
        if isinstance(node, dict) and part in node:
            node = node[part]
            continue
        owner = node if isinstance(node, dict) else {}
        parent = config_at(config, parts[: i - 1]) if i and parts[i - 1] == "init_args" else None
        if parent and "class_path" in parent and i == len(parts) - 1 and part in _params(parent["class_path"]):
            return
        raise ValueError(
            f"{where}: unknown override {key!r} ({part!r} is not an option there; found "
            f"{sorted(owner) if owner else 'a value'})"
        )


def config_at(config: dict, parts: list[str]):
    node = config
    for part in parts:
        node = node[part]
    return node


def apply(config: dict, overrides: dict) -> dict:
    """A copy of ``config`` with ``overrides`` applied (see the module docstring)."""
    out = copy.deepcopy(config)
    for key, value in overrides.items():
        if key.startswith(CALLBACKS):
            _apply_callback(out, key[len(CALLBACKS) :].split("."), value)
            continue
        *path, last = key.split(".")
        node = out
        for part in path:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[last] = value
    return out


def _apply_callback(config: dict, parts: list[str], value) -> None:
    """``trainer.callbacks.<Class>[.init_args.<option>]``, by the by-class rule of ``merge_callbacks``; a new
    callback named by its class alone is one of ``hl_lightning.callbacks``."""
    name, rest = parts[0], parts[1:]
    callbacks = config["trainer"].get("callbacks", [])
    cb = find_callback(callbacks, name)
    entry = {"class_path": cb["class_path"] if cb else f"hl_lightning.callbacks.{name}"}
    if rest:
        entry["init_args"] = {rest[-1]: value}
    elif value is None:
        entry[REMOVE] = True
    else:
        entry["init_args"] = value.get("init_args", {})
    config["trainer"]["callbacks"] = merge_callbacks(callbacks, [entry], f"override trainer.callbacks.{name}")
