"""Config mistakes as one line: the key, what is wrong with it, and the nearest valid name.

The command-line parser (jsonargparse) reports a mistake inside a nested class's options as an indented tree::

    Parser key "model":
      Does not validate against any of the Union subtypes
      ...
        - Problem with given class_path 'hl_lightning.modules.DPOModule':
            Option 'betta' is not accepted
      ...

:func:`one_line_error` walks that tree to its first reason and names the whole key, the class it belongs to
and, by ``difflib``, what was probably meant::

    model.init_args.betta: DPOModule has no option 'betta' (did you mean 'beta'?)
    model.class_path: no class hl_lightning.modules.DPOModel (did you mean DPOModule?)
    model.init_args.beta: 'high' is not a float

A report it does not recognise stays as the parser wrote it. ``hl-lightning fit --debug`` shows every report in
full.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import re
import sys
from argparse import ArgumentParser as PlainParser
from dataclasses import dataclass
from typing import NoReturn

from jsonargparse import ArgumentParser
from lightning.pytorch.cli import LightningArgumentParser

from hl_lightning.models.engines import engine_option_error
from hl_lightning.rewards.user import import_hint

_KEY = re.compile(r'^(?:- )?Parser key "([^"]+)":$')
_CLASS = re.compile(r"^- Problem with given class_path '([^']+)':$")
_INLINE_CLASS = re.compile(r"Got value: Namespace\(class_path='([\w.]+)'")  # a callable option (optimizer) reports so
_UNKNOWN = re.compile(r"Option '([\w.]+)' is not accepted")
_SUBCOMMAND_KEY = re.compile(r"(?:Subcommand '[\w-]+'|Group '([\w.]+)') does not accept option '([\w.]+)'")
_UNRECOGNIZED = re.compile(r"unrecognized arguments: --([\w.]+)")
_NO_CLASS = re.compile(r"module '([\w.]+)' has no attribute '(\w+)'")
_GOT = re.compile(r"^(?:- )?Expected an? (.+?)\. Got value: (.*)$")
_EXPECTED = re.compile(r"^- Expected an? (<class '[\w.]+'>|typing\.Literal\[.*\])$")
_GIVEN = re.compile(r"^Given value: (.*)$")


class OneLineErrorParser(LightningArgumentParser):
    """LightningCLI's parser, except that a config mistake is one line (:func:`one_line_error`) instead of the
    usage and a nested report: an unknown option or class, a value of the wrong type, a class in a module that
    cannot be imported (a reward in the user's project, say), a class given for a rollout engine that is not one."""

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        hint = one_line_error(message, getattr(ex, "subcommand_parser", None) or self)
        if hint is None or not self.exit_on_error:
            super().error(message, ex)
        sys.stderr.write(f"error: {hint}\n")
        self.exit(2)


def one_line_error(message: str, parser: PlainParser | None = None) -> str | None:
    """The one-line form of a parser report, or None for a report of another kind. ``parser`` (the one that
    rejected an option) supplies the valid names of its own options."""
    missing = re.search(r"No module named '([\w.]+)'", message)
    if missing is not None:
        return f"cannot import {missing.group(1)!r}: {import_hint(missing.group(1))}"
    found, flag = _SUBCOMMAND_KEY.search(message), _UNRECOGNIZED.match(message)
    if found is not None and parser is not None:
        key = f"{found.group(1)}.{found.group(2)}" if found.group(1) else found.group(2)
        return _unknown_top_level(key, parser)
    if flag is not None and parser is not None:
        return _unknown_top_level(flag.group(1), parser)
    return engine_option_error(message) or _nested(message)


@dataclass
class _Frame:
    """One level of the report: a ``Parser key`` (``list``: a list of classes, such as ``trainer.callbacks``) or
    the class given there."""

    indent: int
    key: str | None = None
    class_path: str | None = None
    list: bool = False


def _nested(message: str) -> str | None:
    """Walk the report's tree to its first reason; None when no reason is one we know."""
    lines = message.splitlines()
    frames: list[_Frame] = []
    for number, line in enumerate(lines):
        text, indent = line.strip(), len(line) - len(line.lstrip(" "))
        if not text:
            continue
        while frames and frames[-1].indent >= indent:
            frames.pop()
        reason = _reason(text, frames, lines[number:], indent)
        if reason is not None:
            return reason
        if (key := _KEY.match(text)) is not None:
            frames.append(_Frame(indent, key=key.group(1)))
        elif (given := _CLASS.match(text)) is not None:
            frames.append(_Frame(indent, class_path=given.group(1)))
        elif text.startswith("Subtypes: [list[") and frames and frames[-1].key:
            frames[-1].list = True
    return None


def _reason(text: str, frames: list[_Frame], rest: list[str], indent: int) -> str | None:
    """The one-line error when ``text`` is a reason we know (the report's lines from here on: ``rest``)."""
    inline = _INLINE_CLASS.search(text)
    if inline is not None and not (frames and frames[-1].class_path == inline.group(1)):
        frames = [*frames, _Frame(indent, class_path=inline.group(1))]
    if not frames:
        return None
    if (unknown := _UNKNOWN.search(text)) is not None:
        return _unknown_option(frames, unknown.group(1))
    if (no_class := _NO_CLASS.search(text)) is not None:
        return _unknown_class(frames, f"{no_class.group(1)}.{no_class.group(2)}")
    if (got := _GOT.match(text)) is not None:
        return f"{_path(frames)}: {got.group(2)!r} is not {_wanted([got.group(1)])}"
    if _EXPECTED.match(text):
        return _union_mismatch(frames, rest, indent)
    return None


def _path(frames: list[_Frame]) -> str:
    """The dotted key of the innermost frame: ``model.init_args.clip.init_args``,
    ``trainer.callbacks[HeldOutEval].init_args``."""
    parts: list[str] = []
    for previous, frame in zip([None, *frames], frames, strict=False):
        if frame.key is not None:
            parts.append(frame.key)
        else:
            owner = f"[{_short(frame.class_path)}]" if previous is not None and previous.list else ""
            parts[-1:] = [f"{parts[-1] if parts else ''}{owner}", "init_args"]
    return ".".join(parts)


def _short(class_path: str | None) -> str:
    return (class_path or "").rsplit(".", 1)[-1]


def _unknown_option(frames: list[_Frame], name: str) -> str:
    owner = next((f.class_path for f in reversed(frames) if f.class_path), None)
    valid = _class_options(owner) if owner else []
    return f"{_path(frames)}.{name}: {_short(owner) or 'this class'} has no option '{name}'{_did_you_mean(name, valid)}"


def _unknown_class(frames: list[_Frame], class_path: str) -> str | None:
    """``model.class_path: no class hl_lightning.modules.DPOModel (did you mean DPOModule?)``; None when another class
    was given (an import inside that class's module failed: the full report says where)."""
    if frames and frames[-1].class_path not in (None, class_path):
        return None
    frames = frames[:-1] if frames and frames[-1].class_path == class_path else frames
    where = _path(frames) if frames and frames[-1].list else f"{_path(frames)}.class_path"
    module_name, name = class_path.rsplit(".", 1)
    module = sys.modules.get(module_name)  # imported: the parser found the module, not the name in it
    classes = [n for n in dir(module) if not n.startswith("_") and inspect.isclass(getattr(module, n, None))]
    guess = _nearest(name, classes)
    return f"{where}: no class {class_path}" + (f" (did you mean {guess}?)" if guess else "")


def _union_mismatch(frames: list[_Frame], rest: list[str], indent: int) -> str | None:
    """``limit: 'abc' is not an int or None``: a value that matches none of an option's plain types; None when the
    union also offers classes (their own reports are the reasons then)."""
    wanted: list[str] = []
    for line in rest:
        text, level = line.strip(), len(line) - len(line.lstrip(" "))
        if level < indent and text.startswith("Given value type:"):
            continue
        if level < indent:
            given = _GIVEN.match(text)
            return f"{_path(frames)}: {given.group(1)!r} is not {_wanted(wanted)}" if given else None
        expected = _EXPECTED.match(text)
        if level == indent and expected is None:
            return None
        if expected is not None and level == indent:
            wanted.append(expected.group(1))
    return None


def _wanted(types: list[str]) -> str:
    """``a float``, ``an int or None``, ``one of 'auto', 'reward'`` from the parser's type names."""
    names = []
    for spelled in types:
        literal = re.fullmatch(r"typing\.Literal\[(.*)\]", spelled)
        if literal is not None:
            names.append(f"one of {literal.group(1)}")
            continue
        name = _short(re.sub(r"^<class '([\w.]+)'>$", r"\1", spelled))
        names.append("None" if name == "NoneType" else f"{'an' if name[:1] in 'aeiouAEIOU' else 'a'} {name}")
    return " or ".join(names)


def _unknown_top_level(key: str, parser: PlainParser) -> str:
    """``trainer.max_step: Trainer has no option 'max_step' (did you mean 'max_steps'?)``, for an option of the
    command itself or of one of its groups (``trainer``)."""
    group, _, name = key.rpartition(".")
    subcommands = getattr(getattr(parser, "_subcommands_action", None), "_name_parser_map", {})
    actions = [action for each in (parser, *subcommands.values()) for action in each._actions]
    prefix = f"{group}." if group else ""
    valid = {a.dest[len(prefix) :] for a in actions if a.dest.startswith(prefix) and "." not in a.dest[len(prefix) :]}
    base = next((getattr(a, "basetype", None) for a in actions if a.dest == group), None)
    owner = base.__name__ if inspect.isclass(base) else f"the {parser.prog.split()[-1]} command"
    return f"{key}: {owner} has no option '{name}'{_did_you_mean(name, sorted(valid))}"


def _class_options(class_path: str) -> list[str]:
    """The option names the parser accepts for ``class_path`` (its parameters, those of its bases included)."""
    module_name, name = class_path.rsplit(".", 1)
    parser = ArgumentParser(exit_on_error=False)
    try:
        parser.add_class_arguments(getattr(importlib.import_module(module_name), name), fail_untyped=False)
    except (ImportError, AttributeError, ValueError, TypeError):  # no suggestion then; the error stands
        return []
    return sorted(parser.get_defaults().as_dict())


def _nearest(name: str, valid: list[str]) -> str | None:
    """The valid name nearest to ``name`` (``difflib``; case counts least), or None when none is near."""
    by_lower = {v.lower(): v for v in valid}
    guess = difflib.get_close_matches(name.lower(), list(by_lower), n=1)
    return by_lower[guess[0]] if guess else None


def _did_you_mean(name: str, valid: list[str]) -> str:
    guess = _nearest(name, valid)
    return f" (did you mean '{guess}'?)" if guess else ""
