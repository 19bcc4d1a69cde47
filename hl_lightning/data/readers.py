"""Our own readers of local data files: JSON Lines, JSON, Parquet and ``datasets.save_to_disk`` directories.

:func:`read_file` returns a list of :class:`Row` s: dicts that know where they came from ("row 3", or
"row 3 (line 5)" in a JSON Lines file with blank lines), for error messages. A JSON Lines line that cannot
be used (bytes that are not UTF-8, malformed or cut-off JSON, a value that is not an object), or a JSON list
item that is not an object, becomes a :class:`BadRow` carrying its :class:`DataError`: ``process_rows``
raises it naming the file and the line, or drops and counts it with ``skip_invalid``. A file that cannot be
read at all (a corrupt Parquet file, malformed JSON in a ``.json`` file, no rows) raises :class:`DataError`
naming the file. Text is UTF-8, with or without a byte-order mark; CRLF line ends are accepted.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SUFFIXES = (".json", ".jsonl", ".parquet")
_NO_ROWS = {
    ".jsonl": "it is empty or holds only blank lines",
    ".json": "it is empty or holds an empty list",
    ".parquet": "it holds 0 rows",
    "": "it holds 0 rows",
}


class DataError(ValueError):
    """A data file or row cannot be used; the message says where, what is wrong and what to do."""

    def __init__(self, message: str, reason: str = "invalid row") -> None:
        """Create the error.

        Args:
            message: the full explanation shown to the user.
            reason: a short category, used to count rows dropped with ``skip_invalid``.
        """
        super().__init__(message)
        self.reason = reason


class Row(dict):
    """A row read from a file; ``where`` locates it in error messages, e.g. "row 3" or "row 3 (line 5)"."""

    __slots__ = ("where",)

    def __init__(self, data: Any = (), where: str | None = None) -> None:
        super().__init__(data)
        self.where = where


class BadRow(Row):
    """A line or item that is not a usable row: an empty row carrying the error to raise or count."""

    __slots__ = ("error",)

    def __init__(self, where: str, error: DataError) -> None:
        super().__init__((), where)
        self.error = error


def json_kind(value: Any) -> str:
    """The JSON name of a value's type, for messages: null, boolean, number, string, list or object."""
    if value is None:
        return "null"
    kinds = ((bool, "boolean"), (int | float, "number"), (str, "string"), (list | tuple, "list"), (dict, "object"))
    return next((name for kind, name in kinds if isinstance(value, kind)), type(value).__name__)


def show(value: Any, width: int = 60) -> str:
    """``repr(value)``, shortened to ``width`` characters."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def describe(value: Any, width: int = 60) -> str:
    """A value for messages: its JSON type and :func:`show`, e.g. "number 3", "string 'x'", "null"."""
    return "null" if value is None else f"{json_kind(value)} {show(value, width)}"


def _not_utf8(line: bytes, start: int) -> str:
    return f"byte {start + 1} of the line ({line[start : start + 1]!r}) is not UTF-8 text; save the file as UTF-8"


def _not_object(value: Any) -> DataError:
    hint = "; for one JSON list of rows, name the file .json" if isinstance(value, list) else ""
    return DataError(
        f"holds a JSON {describe(value, 40)}, not an object; every row must be an "
        f'object such as {{"prompt": ..., ...}}{hint}',
        "not an object",
    )


def _parse_line(text: str) -> tuple[dict | None, DataError | None]:
    """One JSON Lines line as an object, or the error saying why it is not one."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        near = text[max(0, err.pos - 20) : err.pos + 20].strip()
        return None, DataError(
            f"not valid JSON ({err.msg.removesuffix(' at')} at column {err.colno}, near "
            f"{near!r}); each line must hold one complete JSON object (not cut off, not spread "
            "over several lines): fix or remove the line",
            "malformed JSON",
        )
    except RecursionError:
        return None, DataError("not valid JSON: nested too deeply to parse; fix or remove the line", "malformed JSON")
    if not isinstance(value, dict):
        return None, _not_object(value)
    return value, None


def read_jsonl(lines: Iterable[bytes]) -> list[Row]:
    """Rows of JSON Lines (one object per non-blank line; lines split on ``\\n`` only)."""
    rows: list[Row] = []
    for number, raw in enumerate(lines, 1):
        try:
            text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as err:
            rows.append(BadRow(f"line {number}", DataError(_not_utf8(err.object, err.start), "not UTF-8")))
            continue
        if not text.strip():
            continue
        value, error = _parse_line(text)
        n = len(rows) + 1
        if error is not None:
            rows.append(BadRow(f"line {number}", error))
        else:
            rows.append(Row(value, f"row {n}" if n == number else f"row {n} (line {number})"))
    return rows


def _decode(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        data = err.object  # without a byte-order mark: the error's offsets count from there
        start, end = data.rfind(b"\n", 0, err.start) + 1, data.find(b"\n", err.start)
        line, number = data[start : end if end >= 0 else len(data)], data.count(b"\n", 0, err.start) + 1
        raise DataError(f"{path}, line {number}: {_not_utf8(line, err.start - start)}", "not UTF-8") from None


def _json_items(path: Path, doc: Any) -> list:
    """The rows of a JSON document: a list, an object holding one list of objects (``{"data": [...]}``), or
    an object of equally long columns (``{"prompt": [...], "chosen": [...]}``); the two object forms are logged."""
    if isinstance(doc, list):
        return doc
    if isinstance(doc, dict):
        lists = {key: value for key, value in doc.items() if isinstance(value, list)}
        if len(lists) == 1 and any(isinstance(item, dict) for item in next(iter(lists.values()))):
            key, others = next(iter(lists)), [k for k in doc if k not in lists]
            log.info("%s: the rows are the list under key %r; the other keys %s are not read", path, key, others)
            return lists[key]
        if doc and len(lists) == len(doc) and len({len(value) for value in lists.values()}) == 1:
            log.info("%s: a JSON object of equally long lists: read as the columns %s", path, list(doc))
            return [dict(zip(doc, values, strict=True)) for values in zip(*lists.values(), strict=True)]
    raise DataError(
        f"{path} holds a JSON {describe(doc, 40)}, not a list of rows; write a list of "
        'objects, [{"prompt": ...}, ...], or {"data": [...]}, or one object per line in a .jsonl file',
        "not a list of rows",
    )


def read_json(path: Path, data: bytes) -> list[Row]:
    """Rows of a JSON file (see :func:`_json_items`); a file of JSON Lines is read as such."""
    text = _decode(path, data)
    if not text.strip():
        return []
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        if err.msg == "Extra data":  # more than one value: one object per line, as datasets also accepts
            log.info("%s holds several JSON values: read as JSON Lines (one object per line)", path)
            return read_jsonl(data.split(b"\n"))
        raise DataError(
            f"{path}, line {err.lineno}: not valid JSON ({err.msg.removesuffix(' at')} at column "
            f"{err.colno}); the file must hold one JSON list of objects, [{{...}}, ...], complete (not "
            "cut off), or one object per line",
            "malformed JSON",
        ) from None
    except RecursionError:
        raise DataError(f"{path}: not valid JSON: nested too deeply to parse", "malformed JSON") from None
    return [
        Row(item, f"row {i}") if isinstance(item, dict) else BadRow(f"row {i}", _not_object(item))
        for i, item in enumerate(_json_items(path, doc), 1)
    ]


def read_parquet(path: Path) -> list[Row]:
    """Rows of a Parquet file, through pyarrow."""
    import pyarrow.parquet as pq

    try:
        records = pq.read_table(path).to_pylist()
    except Exception as err:  # pyarrow raises ArrowInvalid, OSError, ... for damaged or cut-off files
        raise DataError(
            f"{path} is not a readable Parquet file ({type(err).__name__}: {err}); write it again "
            "(e.g. with datasets.Dataset.to_parquet or pandas.DataFrame.to_parquet) and check that it "
            "was copied completely",
            "unreadable file",
        ) from None
    return [Row(record, f"row {i}") for i, record in enumerate(records, 1)]


def _saved_empty(path: Path) -> bool:
    """Whether a ``save_to_disk`` directory holds a dataset of 0 rows (no data files: datasets cannot load it)."""
    try:
        return json.loads((path / "state.json").read_text())["_data_files"] == []
    except (OSError, ValueError, KeyError, TypeError):
        return False


def read_saved(path: Path) -> list[Row]:
    """Rows of a directory written by ``datasets.Dataset.save_to_disk`` (one split)."""
    import datasets

    if _saved_empty(path):
        return []
    try:
        data = datasets.load_from_disk(str(path))
        splits = list(data) if isinstance(data, datasets.DatasetDict) else None
        records = [] if splits is not None else data.to_list()
    except Exception as err:  # datasets / pyarrow raise many types for missing or damaged files
        raise DataError(
            f"{path} is not a readable datasets directory ({type(err).__name__}: {err}); pass a "
            "directory written by datasets.Dataset.save_to_disk, or a JSONL, JSON or Parquet file",
            "unreadable file",
        ) from None
    if splits is not None:
        raise DataError(
            f"{path} holds several splits {splits}; pass the directory of one split, e.g. "
            f"{path / (splits[0] if splits else 'train')}.",
            "several splits",
        )
    return [Row(record, f"row {i}") for i, record in enumerate(records, 1)]


def read_file(path: Path) -> list[Row]:
    """The rows of an existing file or directory, by its extension; a file without rows is an error."""
    suffix = "" if path.is_dir() else path.suffix.lower()
    if suffix and suffix not in SUFFIXES:
        raise DataError(
            f"{path}: unknown extension {path.suffix!r}; use one of {list(SUFFIXES)} or a directory "
            "saved with datasets.Dataset.save_to_disk.",
            "unknown format",
        )
    if suffix in ("", ".parquet"):
        rows = read_saved(path) if not suffix else read_parquet(path)
    else:
        try:
            data = path.read_bytes()
        except OSError as err:
            raise DataError(
                f"{path} could not be read ({type(err).__name__}: {err.strerror or err})", "unreadable file"
            ) from None
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise DataError(
                f"{path} is UTF-16 text (it starts with a UTF-16 byte-order mark); save the file as UTF-8", "not UTF-8"
            )
        rows = read_jsonl(data.split(b"\n")) if suffix == ".jsonl" else read_json(path, data)
    if not rows:
        raise DataError(
            f"{path} has no rows ({_NO_ROWS[suffix]}); add rows (in a .jsonl file, one JSON object "
            "per line) or pass the right file",
            "no rows",
        )
    return rows
