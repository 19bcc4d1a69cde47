"""Read rows from local files and check them row by row (``process_rows``); the normalisers of the TRL formats
(``normalize_pair`` and the others, ``as_messages``) live in :mod:`hl_lightning.data.normalize` and are
re-exported here. A bad line or row is reported naming the file and the row (or line), or counted when dropping.
"""

from __future__ import annotations

import difflib
import json
import logging
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hl_lightning.data.columns import KNOWN
from hl_lightning.data.normalize import (
    ROLES,
    Messages,
    as_messages,
    completion_messages,
    normalize_group,
    normalize_pair,
    normalize_prompt,
    normalize_unpaired,
)
from hl_lightning.data.readers import BadRow, DataError, Row, read_file, show

__all__ = [
    "ROLES",
    "BadRow",
    "DataError",
    "Messages",
    "Row",
    "as_messages",
    "completion_messages",
    "normalize_group",
    "normalize_pair",
    "normalize_prompt",
    "normalize_unpaired",
    "process_rows",
    "read_rows",
]

log = logging.getLogger(__name__)


def read_rows(path: str | Path, columns: dict[str, str | None] | None = None) -> list[dict]:
    """Read a local JSONL, JSON or Parquet file, or a ``save_to_disk`` directory, as a list of dicts.

    Every row has the same keys (the columns of all rows, None where a row lacks one, as in ``datasets``).
    A line or item that is not a usable row (see ``readers``) is a :class:`BadRow`, raised or counted by
    :func:`process_rows`; a file that cannot be read at all raises :class:`DataError`.

    Args:
        path: the file or directory (nothing is fetched from the Hugging Face Hub).
        columns: maps our column names to the file's, e.g. ``{"prompt": "question"}``; a file column
            named like a mapped one of ours (here ``prompt``) is then not read (logged in one line).
            ``{"prompt": None}``: the prompt has no column (pairs then use the implicit prompt). A key that
            is a near miss of one of our names (``promt``) is refused.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(
            f"{path}: no such file or directory. Pass a local JSONL, JSON or Parquet file or "
            "a datasets.save_to_disk directory (Hub datasets are not downloaded: save one "
            "locally).",
            "no such file",
        )
    return _map_columns(read_file(path), path, columns or {})


def _check_mapping(path: Path, columns: dict[str, str | None], found: list[str]) -> None:
    for ours, theirs in columns.items():
        close = difflib.get_close_matches(ours, sorted(KNOWN), n=1, cutoff=0.8) if ours not in KNOWN else []
        if close:
            raise DataError(
                f"{path}: the columns option maps {ours!r}, a column no data module reads; did you mean "
                f"{close[0]!r}? (columns: {{{close[0]}: {theirs}}})",
                "unknown column",
            )
        if theirs is not None and found and theirs not in found:
            raise DataError(
                f"{path}: column {theirs!r} (mapped to {ours!r} by the columns option) is not in "
                f"the file; columns found: {found}.",
                "unknown column",
            )


def _map_columns(rows: list[Row], path: Path, columns: dict[str, str | None]) -> list[dict]:
    found = list(dict.fromkeys(key for row in rows for key in row))
    _check_mapping(path, columns, found)
    rename = {theirs: ours for ours, theirs in columns.items() if theirs is not None}
    shadowed = set(columns) - set(rename)  # our names whose own file column a mapping replaces (or drops)
    for name in sorted(shadowed & set(found)):
        source = "sets it to null" if columns[name] is None else f"takes it from {columns[name]!r}"
        log.info("%s: the file's own %r column is not read: the columns option %s", path, name, source)
    names = list(dict.fromkeys(rename.get(key, key) for key in found if key not in shadowed))
    mapped: list[dict] = []
    for row in rows:
        if isinstance(row, BadRow):
            mapped.append(row)
            continue
        renamed = {rename.get(key, key): value for key, value in row.items() if key not in shadowed}
        mapped.append(Row({name: renamed.get(name) for name in names}, getattr(row, "where", None)))
    return mapped


def _id_keys(row: dict, id_columns: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(c, json.dumps(row[c], sort_keys=True, default=str)) for c in id_columns if row.get(c) is not None]


def _check_ids(row: dict, keys: list[tuple[str, str]], seen: dict[tuple[str, str], str]) -> None:
    for key in keys:
        if key in seen:
            column = key[0]
            raise DataError(
                f"duplicate {column} {show(row[column])} (column {column!r}), already used by "
                f"{seen[key]}; every {column} must be unique: remove the repeated row or give it "
                f"a new {column}",
                "duplicate id",
            )


def process_rows(
    rows: list[dict],
    fn: Callable[[dict], Any],
    source: str,
    skip_invalid: bool = False,
    id_columns: tuple[str, ...] = ("id",),
) -> tuple[list[tuple[int, Any]], Counter[str]]:
    """Apply ``fn`` to every row; return ``[(row index, result)]`` and the dropped-row counts per reason.

    A :class:`BadRow` (a line that could not be read), a :class:`DataError` from ``fn`` or a value of an
    ``id_columns`` column already seen in a valid row ("duplicate id") is re-raised naming ``source`` and
    the 1-based row (or line), unless ``skip_invalid`` is set: then the row is dropped and counted, and a
    warning summarises the drops. Pass ``id_columns=("id", "prompt_id")`` where a prompt must appear once
    (prompt files, groups); pairs and unpaired rows may share a ``prompt_id``.
    """
    if not rows:
        raise DataError(f"{source} has no rows; add rows or pass the right file.", "no rows")
    kept: list[tuple[int, Any]] = []
    dropped: Counter[str] = Counter()
    seen: dict[tuple[str, str], str] = {}
    first: str | None = None
    for index, row in enumerate(rows):
        where = getattr(row, "where", None) or f"row {index + 1}"
        try:
            if isinstance(row, BadRow):
                raise row.error
            keys = _id_keys(row, id_columns)
            _check_ids(row, keys, seen)
            kept.append((index, fn(row)))
            seen.update((key, where) for key in keys if key not in seen)
        except DataError as err:
            if not skip_invalid:
                raise DataError(
                    f"{source}, {where}: {err} (or set skip_invalid=true to drop such rows)", err.reason
                ) from None
            dropped[err.reason] += 1
            first = first or f"{where}: {err}"
    summary = ", ".join(f"{count} {reason}" for reason, count in dropped.most_common())
    if not kept:
        raise DataError(f"{source}: all {len(rows)} rows are invalid ({summary}); the first, {first}", "no valid rows")
    if dropped:
        log.warning("%s: dropped %d of %d rows (%s)", source, dropped.total(), len(rows), summary)
    return kept, dropped
