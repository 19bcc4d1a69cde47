"""Bad input, one table: every reader x every row shape x every class of error (and positive controls).

Each case writes a file, reads it with ``read_rows`` and checks it with ``process_rows``. An error case
asserts one :class:`DataError` whose message names the file, the 1-based line or row and the column (where
there is one), with no chained library exception; with ``skip_invalid=True`` the bad rows are dropped and
counted under the case's reason (a file-level error, reason None, is never dropped). A positive control
(match None) must load, row for row.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import Dataset

from hl_lightning.data.rows import (
    DataError,
    normalize_group,
    normalize_pair,
    normalize_prompt,
    normalize_unpaired,
    process_rows,
    read_rows,
)
from tests.data.bad_input_cases import CASES, ID_COLUMNS, NAMES, VALID, Case, Good

NORMALIZE = {
    "pair": normalize_pair,
    "unpaired": normalize_unpaired,
    "group": normalize_group,
    "prompt": normalize_prompt,
}


def _fill(data: Any, shape: str) -> Any:
    """``data`` with ``Good(...)`` / ``GOOD`` replaced by the shape's valid row."""
    if isinstance(data, Good):
        return {**VALID[shape], **data}
    if isinstance(data, bytes):
        good = json.dumps(VALID[shape]).encode()
        return data.replace(b"GOOD", good).replace(b"FIELDS", good[1:-1])
    if isinstance(data, list):
        return [_fill(item, shape) for item in data]
    return data


def _write(tmp_path: Path, fmt: str, shape: str, data: Any) -> Path:
    path, data = tmp_path / NAMES[fmt], _fill(data, shape)
    if callable(data):
        data(path, VALID[shape])
    elif isinstance(data, bytes):
        path.write_bytes(data)
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in data), encoding="utf-8")
    elif fmt == "json":
        path.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    elif fmt == "parquet":
        pq.write_table(pa.Table.from_pylist(data), path)
    else:
        Dataset.from_list(data).save_to_disk(str(path))
    return path


def _expected(case: Case, shape: str) -> list[dict]:
    rows = _fill(case.expect if case.expect is not None else case.data, shape)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    return [{column: row.get(column) for column in columns} for row in rows]  # absent columns are None


def _check_skip(case: Case, run, path: Path) -> None:
    n = len(read_rows(path))
    if len(case.bad) == n:  # every row is bad: nothing is left to keep
        with pytest.raises(
            DataError,
            match=rf"{re.escape(path.name)}: all {n} rows are invalid \({n} "
            rf"{re.escape(case.reason)}\); the first, ",
        ):
            run(True)
        return
    kept, dropped = run(True)
    assert [index + 1 for index, _ in kept] == [row for row in range(1, n + 1) if row not in case.bad]
    assert dropped == Counter({case.reason: len(case.bad)})


@pytest.mark.parametrize(
    ("case", "fmt", "shape"),
    [
        pytest.param(case, fmt, shape, id=f"{case.name}-{fmt}-{shape}")
        for case in CASES
        for fmt in case.formats.split()
        for shape in case.shapes.split()
    ],
)
def test_bad_input(tmp_path, case, fmt, shape):
    path = _write(tmp_path, fmt, shape, case.data)
    normalize, ids = NORMALIZE[shape], ID_COLUMNS.get(shape, ("id",))

    def run(skip_invalid: bool):
        return process_rows(read_rows(path), normalize, str(path), skip_invalid, id_columns=ids)

    if case.match is None:
        expected = _expected(case, shape)
        assert read_rows(path) == expected
        kept, dropped = run(False)
        assert [row for _, row in kept] == [normalize(row) for row in expected] and dropped == Counter()
        return
    pattern = case.match.replace("FILE", re.escape(path.name))
    with pytest.raises(DataError, match=pattern) as error:
        run(False)
    assert error.value.__cause__ is None  # no datasets / pyarrow / json exception behind it
    if case.reason is None:  # a file-level error: skip_invalid cannot drop it
        with pytest.raises(DataError, match=pattern):
            run(True)
        return
    assert error.value.reason == case.reason
    _check_skip(case, run, path)
