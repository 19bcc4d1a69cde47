"""Reading files, column mapping, format normalisation and row-level errors."""

from __future__ import annotations

import json
import logging

import pytest
from datasets import Dataset, DatasetDict

from hl_lightning.data.rows import (
    DataError,
    normalize_group,
    normalize_pair,
    normalize_unpaired,
    process_rows,
    read_rows,
)

ROWS = [{"q": "1 + 1?", "chosen": "2", "rejected": "3"}, {"q": "Hi", "chosen": "Hey", "rejected": "No"}]
VALID = {
    normalize_pair: {"prompt": "p", "chosen": "a", "rejected": "b"},
    normalize_unpaired: {"prompt": "p", "completion": "a", "label": True},
    normalize_group: {"prompt": "p", "completions": ["a", "b"], "rewards": [1, 0]},
}
USER = [{"role": "user", "content": "What is 2 + 2?"}]


def _say(role: str, text: str) -> list[dict]:
    return [{"role": role, "content": text}]


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".parquet", "_dir"])
def test_read_rows_formats(tmp_path, suffix):
    path = tmp_path / f"data{suffix}"
    if suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    elif suffix == ".json":
        path.write_text(json.dumps(ROWS))
    elif suffix == ".parquet":
        Dataset.from_list(ROWS).to_parquet(str(path))
    else:
        Dataset.from_list(ROWS).save_to_disk(str(path))
    assert read_rows(path) == ROWS
    mapped = read_rows(path, columns={"prompt": "q"})[0]
    assert mapped == {"prompt": "1 + 1?", "chosen": "2", "rejected": "3"}


def test_read_rows_errors(tmp_path):
    with pytest.raises(DataError, match=r"nope\.jsonl: no such file"):
        read_rows(tmp_path / "nope.jsonl")
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match=r"data.csv: unknown extension '.csv'"):
        read_rows(tmp_path / "data.csv")
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    with pytest.raises(DataError, match=r"bad.jsonl, line 1: not valid JSON"):  # a bad line is a row error
        process_rows(read_rows(tmp_path / "bad.jsonl"), normalize_pair, str(tmp_path / "bad.jsonl"))
    DatasetDict({"train": Dataset.from_list(ROWS)}).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(DataError, match=r"several splits \['train'\]"):
        read_rows(tmp_path / "dd")


def test_column_mapping_error_lists_columns(write_jsonl):
    path = write_jsonl("qa.jsonl", ROWS)
    with pytest.raises(DataError, match=r"qa.jsonl: column 'question' \(mapped to 'prompt'.*\['q', 'chosen'"):
        read_rows(path, columns={"prompt": "question"})


def test_standard_and_conversational_pairs():
    standard = normalize_pair({"prompt": "What is 2 + 2?", "chosen": "4", "rejected": "5", "answer": 4})
    assert standard == {
        "prompt": USER,
        "chosen": _say("assistant", "4"),
        "rejected": _say("assistant", "5"),
        "answer": 4,
    }
    conversational = {"prompt": USER, "chosen": _say("assistant", "4"), "rejected": _say("assistant", "5")}
    assert normalize_pair(conversational) == {k: v for k, v in standard.items() if k != "answer"}
    four, five = _say("assistant", "4"), _say("assistant", "5")
    full = {"prompt": USER, "chosen": USER + four, "rejected": USER + five}
    assert normalize_pair(full)["chosen"] == _say("assistant", "4")  # a repeated prompt prefix is dropped


def test_implicit_prompt():
    system = _say("system", "Be brief.")
    four, five = _say("assistant", "4"), _say("assistant", "5")
    row = {"chosen": system + USER + four, "rejected": system + USER + five}
    assert normalize_pair(row)["prompt"] == system + USER
    assert normalize_pair(row)["rejected"] == five
    strings = normalize_pair({"chosen": "Q: sky? A: blue", "rejected": "Q: sky? A: green"})
    assert strings["prompt"] == _say("user", "Q: sky? A:")
    assert strings["chosen"] == _say("assistant", " blue")
    with pytest.raises(DataError, match="share no leading text"):
        normalize_pair({"chosen": "yes", "rejected": "no"})
    with pytest.raises(DataError, match="column 'prompt' has no value in this row"):  # a null is not "no column"
        normalize_pair({"chosen": "Q: sky? A: blue", "rejected": "Q: sky? A: green", "prompt": None})


def test_unpaired_and_groups():
    row = normalize_unpaired({"prompt": USER, "completion": "4", "label": False})
    assert row == {"prompt": USER, "completion": _say("assistant", "4"), "label": False}
    group = normalize_group(
        {"prompt": "What is 2 + 2?", "completions": ["4", _say("assistant", "5")], "rewards": [1, 0.5]}
    )
    assert group["completions"] == [_say("assistant", "4"), _say("assistant", "5")]
    assert group["rewards"] == [1.0, 0.5] and group["prompt"] == USER


@pytest.mark.parametrize(
    ("normalize", "row", "reason"),
    [
        (
            normalize_pair,
            {"prompt": "p", "chosen": "a"},
            r"column 'rejected' is missing \(columns found: "
            r"\['chosen', 'prompt'\]\).*columns option",
        ),
        (normalize_pair, {"prompt": "p", "chosen": " ", "rejected": "b"}, "column 'chosen' is empty"),
        (normalize_pair, {"prompt": "p", "chosen": "a", "rejected": "a"}, "chosen and rejected are identical"),
        (normalize_pair, {"prompt": 3, "chosen": "a", "rejected": "b"}, "column 'prompt' must be a string"),
        (normalize_unpaired, {"prompt": "p", "completion": "a", "label": 1}, "label must be true or false"),
        (normalize_group, {"prompt": "p", "completions": ["a"], "rewards": [1]}, "at least 2 completions"),
        (normalize_group, {"prompt": "p", "completions": ["a", "b"], "rewards": [1]}, "list of 2 finite numbers"),
        (normalize_group, {"prompt": "p", "completions": ["a", "b"], "rewards": [1, float("nan")]}, "finite"),
        (normalize_group, {"prompt": "p", "completions": ["a", "b"], "rewards": [True, 0]}, "finite numbers"),
        (normalize_group, {"prompt": "p", "completions": ["a", ""], "rewards": [1, 0]}, "is empty"),
    ],
)
def test_row_errors_name_file_and_row(normalize, row, reason):
    with pytest.raises(DataError, match=rf"data.jsonl, row 2: .*{reason}.*skip_invalid=true"):
        process_rows([VALID[normalize], row], normalize, "data.jsonl")


def test_skip_invalid_counts_per_reason(caplog):
    rows = [
        {"prompt": "p", "chosen": "a", "rejected": "b"},
        {"prompt": "p", "chosen": "a", "rejected": "a"},
        {"prompt": "p", "chosen": "", "rejected": "b"},
        {"prompt": "p", "chosen": "c", "rejected": "c"},
    ]
    with caplog.at_level(logging.WARNING):
        kept, dropped = process_rows(rows, normalize_pair, "f.jsonl", skip_invalid=True)
    assert [i for i, _ in kept] == [0] and dropped == {"chosen == rejected": 2, "empty content": 1}
    assert "f.jsonl: dropped 3 of 4 rows (2 chosen == rejected, 1 empty content)" in caplog.text
    with pytest.raises(DataError, match=r"f.jsonl: all 3 rows are invalid \(2 chosen == rejected, 1 empty"):
        process_rows(rows[1:], normalize_pair, "f.jsonl", skip_invalid=True)
