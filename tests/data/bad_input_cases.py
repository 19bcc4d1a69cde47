"""The bad-input table of test_bad_input.py: one :class:`Case` per class of error (and positive controls), each
with the readers and row shapes it applies to, the file content, the expected message and the drop reason."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Dataset, DatasetDict

VALID = {
    "pair": {"prompt": "What is 2 + 2?", "chosen": "4", "rejected": "5"},
    "unpaired": {"prompt": "What is 2 + 2?", "completion": "4", "label": True},
    "group": {"prompt": "What is 2 + 2?", "completions": ["4", "5"], "rewards": [1.0, 0.0]},
    "prompt": {"prompt": "What is 2 + 2?"},
}
ID_COLUMNS = {"group": ("id", "prompt_id"), "prompt": ("id", "prompt_id")}  # one row per prompt
NAMES = {"jsonl": "data.jsonl", "json": "data.json", "parquet": "data.parquet", "dir": "data_dir"}
ALL, SHAPES, TEXT = "jsonl json parquet dir", "pair unpaired group prompt", "jsonl json"
NAN, INF = float("nan"), float("inf")


class Good(dict):
    """Stands for the valid row of the case's shape, updated with these fields (in rows and in expect)."""


GOOD = Good()


def _msg(role: str, text: str) -> dict:
    return {"role": role, "content": text}


def _conv(role: str) -> list[dict]:
    return [_msg("system", "Be brief."), _msg(role, "What is 2 + 2?")]


def _empty_table(path: Path, good: dict) -> None:
    table = pa.table({"prompt": pa.array([], pa.string())})
    pq.write_table(table, path) if path.suffix else Dataset(table).save_to_disk(str(path))


def _cut_parquet(path: Path, good: dict) -> None:
    pq.write_table(pa.Table.from_pylist([good] * 50), path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _garbage_parquet(path: Path, good: dict) -> None:
    path.write_bytes(b"PAR1 this is not a parquet file PAR1")


def _garbage_dir(path: Path, good: dict) -> None:
    Dataset.from_list([good] * 3).save_to_disk(str(path))
    for arrow in path.glob("*.arrow"):
        arrow.write_bytes(b"not an arrow file")


def _plain_dir(path: Path, good: dict) -> None:
    path.mkdir()
    (path / "notes.txt").write_text("not a dataset")


def _splits_dir(path: Path, good: dict) -> None:
    DatasetDict({"train": Dataset.from_list([good] * 2)}).save_to_disk(str(path))


@dataclass(frozen=True)
class Case:
    """One row of the table.

    Attributes:
        name: the test id prefix.
        formats: the readers it runs with (space-separated: jsonl json parquet dir).
        shapes: the normalisers it runs with (pair unpaired group prompt).
        data: rows (``Good(...)`` = the shape's valid row) written in each format, raw file bytes
            (``GOOD`` = that row's JSON, ``FIELDS`` = its fields), or a writer ``(path, valid row)``.
        match: regex the error must match (FILE = the file's name); None: a positive control.
        reason: the count's key with skip_invalid; None: a file-level error, raised even then.
        bad: the 1-based rows that are invalid.
        expect: positive controls written as raw bytes: the rows read.
    """

    name: str
    formats: str
    shapes: str
    data: Any
    match: str | None = None
    reason: str | None = None
    bad: tuple[int, ...] = (2,)
    expect: Any = None


CASES = [
    # --- JSON Lines lines that cannot be read: per line, droppable -------------------------------------
    Case(
        "not-utf8",
        "jsonl",
        SHAPES,
        b'GOOD\n{"prompt": "caf\xe9"}\nGOOD\n',
        r"FILE, line 2: byte 16 of the line \(b'\\xe9'\) is not UTF-8 text; save the file as UTF-8",
        "not UTF-8",
    ),
    Case(
        "malformed-json",
        "jsonl",
        SHAPES,
        b'GOOD\n{"prompt": "p", "chosen" "a"}\nGOOD\n',
        r"FILE, line 2: not valid JSON \(Expecting ':' delimiter at column 26",
        "malformed JSON",
    ),
    Case(
        "cut-off-last-line",
        "jsonl",
        SHAPES,
        b'GOOD\nGOOD\n{"prompt": "p", "cho',
        r"FILE, line 3: not valid JSON \(Unterminated string starting at column 17",
        "malformed JSON",
        (3,),
    ),
    Case(
        "pretty-printed-object",
        "jsonl",
        SHAPES,
        b'GOOD\n{\n  "prompt": "p"\n}\n',
        r"FILE, line 2: not valid JSON \(Expecting property name .* at column 2.*one complete JSON object",
        "malformed JSON",
        (2, 3, 4),
    ),
    Case(
        "line-is-a-list",
        "jsonl",
        SHAPES,
        b'GOOD\n["p", "a", "b"]\nGOOD\n',
        r"FILE, line 2: holds a JSON list \['p', 'a', 'b'\], not an object.*name the file \.json",
        "not an object",
    ),
    Case(
        "line-is-null-or-string",
        "jsonl",
        SHAPES,
        b'GOOD\nnull\n"just text"\nGOOD\n',
        r"FILE, line 2: holds a JSON null, not an object",
        "not an object",
        (2, 3),
    ),
    Case(
        "json-item-not-object",
        "json",
        SHAPES,
        b'[GOOD, "just text", GOOD]',
        r"FILE, row 2: holds a JSON string 'just text', not an object",
        "not an object",
    ),
    # --- files that cannot be read at all: file-level, never dropped ------------------------------------
    Case("empty-file", TEXT, SHAPES, b"", r"FILE has no rows \(it is empty.*add rows"),
    Case("only-blank-lines", TEXT, SHAPES, b"\n   \n\r\n\t\n", r"FILE has no rows \(it is empty"),
    Case("json-empty-list", "json", SHAPES, b"[]\n", r"FILE has no rows \(it is empty or holds an empty list\)"),
    Case("zero-rows", "parquet dir", SHAPES, _empty_table, r"FILE has no rows \(it holds 0 rows\)"),
    Case(
        "utf16-file",
        TEXT,
        SHAPES,
        '{"prompt": "p"}\n'.encode("utf-16"),
        r"FILE is UTF-16 text .*save the file as UTF-8",
    ),
    Case(
        "json-not-utf8",
        "json",
        SHAPES,
        b'[GOOD,\n{"prompt": "caf\xe9"}]',
        r"FILE, line 2: byte 16 of the line \(b'\\xe9'\) is not UTF-8 text; save the file as UTF-8",
    ),
    Case(
        "json-malformed",
        "json",
        SHAPES,
        b'[\nGOOD,\n{"prompt" "p"}\n]',
        r"FILE, line 3: not valid JSON \(Expecting ':' delimiter at column 11\)",
    ),
    Case(
        "json-cut-off",
        "json",
        SHAPES,
        b'[GOOD, {"prompt": "p", "cho',
        r"FILE, line 1: not valid JSON \(Unterminated string starting at column \d+\).*not cut off",
    ),
    Case(
        "json-one-object",
        "json",
        SHAPES,
        b'{"prompt": "p", "chosen": "a"}',
        r"FILE holds a JSON object \{'prompt': 'p', .*not a list of rows; write a list of objects",
    ),
    Case("parquet-garbage", "parquet", SHAPES, _garbage_parquet, r"FILE is not a readable Parquet file \(\w+"),
    Case("parquet-cut-off", "parquet", SHAPES, _cut_parquet, r"FILE is not a readable Parquet file.*copied completely"),
    Case("dir-garbage", "dir", SHAPES, _garbage_dir, r"FILE is not a readable datasets directory \(\w+"),
    Case("dir-not-a-dataset", "dir", SHAPES, _plain_dir, r"FILE is not a readable datasets directory.*save_to_disk"),
    Case("dir-several-splits", "dir", SHAPES, _splits_dir, r"FILE holds several splits \['train'\]; pass the dir"),
    # --- rows of every shape: ids ------------------------------------------------------------------------
    Case(
        "duplicate-id",
        ALL,
        SHAPES,
        [Good(id=7), Good(id=8), Good(id=7)],
        r"FILE, row 3: duplicate id 7 \(column 'id'\), already used by row 1; every id must be unique",
        "duplicate id",
        (3,),
    ),
    Case(
        "duplicate-prompt-id",
        ALL,
        "group prompt",
        [Good(prompt_id="a"), Good(prompt_id="b"), Good(prompt_id="a")],
        r"FILE, row 3: duplicate prompt_id 'a' \(column 'prompt_id'\), already used by row 1",
        "duplicate id",
        (3,),
    ),
    Case(
        "duplicate-id-after-blank-lines",
        "jsonl",
        SHAPES,
        b'{"id": 1, FIELDS}\n\n{"id": 1, FIELDS}\n',
        r"FILE, row 2 \(line 3\): duplicate id 1 \(column 'id'\), already used by row 1",
        "duplicate id",
    ),
    # --- pairs -------------------------------------------------------------------------------------------
    Case(
        "pair-value-missing",
        ALL,
        "pair",
        [GOOD, {"prompt": "p", "chosen": "a"}, GOOD],
        r"FILE, row 2: column 'rejected' has no value in this row \(it is null or absent\)",
        "missing column 'rejected'",
    ),
    Case(
        "pair-null",
        ALL,
        "pair",
        [GOOD, {"prompt": "p", "chosen": None, "rejected": "b"}, GOOD],
        r"FILE, row 2: column 'chosen' has no value in this row",
        "missing column 'chosen'",
    ),
    Case(  # a null prompt in a file with a prompt column is an error, never the implicit prompt
        "pair-prompt-null",
        ALL,
        "pair",
        [GOOD, {"prompt": None, "chosen": "Q: 2 + 2? A: 4", "rejected": "Q: 2 + 2? A: 5"}, GOOD],
        r"FILE, row 2: column 'prompt' has no value in this row",
        "missing column 'prompt'",
    ),
    Case(
        "pair-column-missing",
        ALL,
        "pair",
        [{"prompt": "p", "chosen": "a"}, {"prompt": "q", "chosen": "c"}],
        r"FILE, row 1: column 'rejected' is missing \(columns found: \['chosen', 'prompt'\]\); add a 'rejected' "
        r"field to every row",
        "missing column 'rejected'",
        (1, 2),
    ),
    Case(
        "pair-column-elsewhere",
        ALL,
        "pair",
        [{"prompt": "p", "chosen": "a", "rejected_text": "b"}] * 2,
        r"FILE, row 1: column 'rejected' is missing .*map it with the columns option: "
        r"columns=\{'rejected': 'rejected_text'\}",
        "missing column 'rejected'",
        (1, 2),
    ),
    Case(
        "pair-wrong-type",
        TEXT,
        "pair",
        [GOOD, {"prompt": 3, "chosen": "a", "rejected": "b"}, GOOD],
        r"FILE, row 2: column 'prompt' must be a string or a list of \{role, content\} messages, got number 3",
        "wrong type",
    ),
    Case(
        "pair-unknown-role",
        ALL,
        "pair",
        [Good(prompt=_conv("user")), Good(prompt=_conv("human"))] * 2,
        r"FILE, row 2: column 'prompt', message 2: unknown role 'human'; allowed roles: system, user, assistant, "
        r"tool \(rename 'human' to 'user'\)",
        "unknown role",
        (2, 4),
    ),
    Case(
        "pair-blank-content",
        ALL,
        "pair",
        [GOOD, Good(chosen=" \n "), GOOD],
        r"FILE, row 2: column 'chosen' is empty",
        "empty content",
    ),
    Case(
        "pair-no-messages",
        ALL,
        "pair",
        [Good(chosen=[_msg("assistant", "4")]), Good(chosen=[])],
        r"FILE, row 2: column 'chosen' is an empty list of messages",
        "empty content",
    ),
    Case(
        "pair-message-without-content",
        ALL,
        "pair",
        [Good(chosen=[_msg("assistant", "4")]), Good(chosen=[{"role": "assistant"}])],
        r"FILE, row 2: column 'chosen', message 1: 'content' must be a string, got null",
        "malformed message",
    ),
    Case(
        "pair-identical",
        ALL,
        "pair",
        [GOOD, Good(rejected="4"), GOOD],
        r"FILE, row 2: chosen and rejected are identical",
        "chosen == rejected",
    ),
    Case(
        "pair-no-prompt",
        ALL,
        "pair",
        [
            {"chosen": "Q: 2 + 2? A: 4", "rejected": "Q: 2 + 2? A: 5"},
            {"chosen": "yes", "rejected": "no"},
            {"chosen": "Q: 3 + 3? A: 6", "rejected": "Q: 3 + 3? A: 5"},
        ],
        r"FILE, row 2: there is no prompt column .*share no leading text",
        "no prompt",
    ),
    Case(
        "pair-after-blank-lines",
        "jsonl",
        "pair",
        b'GOOD\n\n   \r\n{"prompt": "p", "chosen": "a", "rejected": "a"}\n',
        r"FILE, row 2 \(line 4\): chosen and rejected are identical",
        "chosen == rejected",
    ),
    # --- unpaired ------------------------------------------------------------------------------------------
    Case(
        "unpaired-label-number",
        TEXT,
        "unpaired",
        [GOOD, Good(label=1), GOOD],
        r"FILE, row 2: column 'label' is number 1, but label must be true or false",
        "wrong type",
    ),
    Case(
        "unpaired-label-string",
        TEXT,
        "unpaired",
        [GOOD, Good(label="yes"), GOOD],
        r"FILE, row 2: column 'label' is string 'yes', but label must be true or false",
        "wrong type",
    ),
    Case(
        "unpaired-label-null",
        ALL,
        "unpaired",
        [GOOD, Good(label=None), GOOD],
        r"FILE, row 2: column 'label' has no value in this row",
        "missing column 'label'",
    ),
    Case(
        "unpaired-unknown-role",
        ALL,
        "unpaired",
        [Good(completion=[_msg("assistant", "4")]), Good(completion=[_msg("gpt", "4")])],
        r"FILE, row 2: column 'completion', message 1: unknown role 'gpt'; allowed roles: system, user, "
        r"assistant, tool \(rename 'gpt' to 'assistant'\)",
        "unknown role",
    ),
    Case(
        "unpaired-empty-prompt",
        ALL,
        "unpaired",
        [GOOD, Good(prompt=""), GOOD],
        r"FILE, row 2: column 'prompt' is empty",
        "empty content",
    ),
    Case(
        "unpaired-completion-object",
        TEXT,
        "unpaired",
        [GOOD, Good(completion={"text": "4"}), GOOD],
        r"FILE, row 2: column 'completion' must be a string or a list .*got object \{'text': '4'\}",
        "wrong type",
    ),
    # --- groups ----------------------------------------------------------------------------------------------
    Case(
        "group-nan-reward",
        ALL,
        "group",
        [GOOD, Good(rewards=[1.0, NAN]), GOOD],
        r"FILE, row 2: column 'rewards', reward 2 is number nan; it must be a list of 2 finite numbers",
        "non-finite reward",
    ),
    Case(
        "group-inf-reward",
        ALL,
        "group",
        [GOOD, Good(rewards=[INF, 0.0]), GOOD],
        r"FILE, row 2: column 'rewards', reward 1 is number inf",
        "non-finite reward",
    ),
    Case(
        "group-string-reward",
        TEXT,
        "group",
        [GOOD, Good(rewards=["1", 0.0]), GOOD],
        r"FILE, row 2: column 'rewards', reward 1 is string '1'",
        "non-finite reward",
    ),
    Case(
        "group-bool-reward",
        TEXT,
        "group",
        [GOOD, Good(rewards=[True, 0.0]), GOOD],
        r"FILE, row 2: column 'rewards', reward 1 is boolean True",
        "non-finite reward",
    ),
    Case(
        "group-rewards-string",
        TEXT,
        "group",
        [GOOD, Good(rewards="1,0"), GOOD],
        r"FILE, row 2: column 'rewards' is string '1,0'; it must be a list of 2 finite numbers",
        "wrong type",
    ),
    Case(
        "group-rewards-count",
        ALL,
        "group",
        [GOOD, Good(rewards=[1.0]), GOOD],
        r"FILE, row 2: column 'rewards' has 1 value\(s\) for 2 completions",
        "rewards mismatch",
    ),
    Case(
        "group-of-one",
        ALL,
        "group",
        [GOOD, Good(completions=["4"], rewards=[1.0]), GOOD],
        r"FILE, row 2: column 'completions' holds 1 completion\(s\), but a group needs at least 2",
        "group of one",
    ),
    Case(
        "group-blank-completion",
        ALL,
        "group",
        [GOOD, Good(completions=["4", "  "]), GOOD],
        r"FILE, row 2: column 'completions', completion 2 is empty",
        "empty content",
    ),
    Case(
        "group-unknown-role",
        ALL,
        "group",
        [
            Good(completions=[[_msg("assistant", "4")]] * 2),
            Good(completions=[[_msg("assistant", "4")], [_msg("bot", "5")]]),
        ],
        r"FILE, row 2: column 'completions', completion 2, message 1: unknown role 'bot'",
        "unknown role",
    ),
    Case(
        "group-completions-string",
        TEXT,
        "group",
        [GOOD, Good(completions="4 or 5"), GOOD],
        r"FILE, row 2: column 'completions' must be a list of completions .*got string '4 or 5'",
        "wrong type",
    ),
    Case(
        "group-rewards-null",
        ALL,
        "group",
        [GOOD, Good(rewards=None), GOOD],
        r"FILE, row 2: column 'rewards' has no value in this row",
        "missing column 'rewards'",
    ),
    Case(
        "group-after-blank-lines",
        "jsonl",
        "group",
        b'GOOD\n\n{"prompt": "p", "completions": ["a"], "rewards": [1]}',
        r"FILE, row 2 \(line 3\): column 'completions' holds 1 completion",
        "group of one",
    ),
    # --- prompt files ------------------------------------------------------------------------------------------
    Case(
        "prompt-null",
        ALL,
        "prompt",
        [Good(answer=4), Good(prompt=None, answer=5), Good(answer=6)],
        r"FILE, row 2: column 'prompt' has no value in this row",
        "missing column 'prompt'",
    ),
    Case(
        "prompt-under-another-name",
        ALL,
        "prompt",
        [{"question": "q1"}, {"question": "q2"}],
        r"FILE, row 1: column 'prompt' is missing \(columns found: \['question'\]\); if 'question' holds it, map "
        r"it with the columns option: columns=\{'prompt': 'question'\}",
        "missing column 'prompt'",
        (1, 2),
    ),
    Case(
        "prompt-object",
        TEXT,
        "prompt",
        [GOOD, Good(prompt={"text": "hi"}), GOOD],
        r"FILE, row 2: column 'prompt' must be a string or a list of \{role, content\} messages, got object",
        "wrong type",
    ),
    Case(
        "prompt-unknown-role",
        ALL,
        "prompt",
        [Good(prompt=_conv("user")), Good(prompt=_conv("User"))],
        r"FILE, row 2: column 'prompt', message 2: unknown role 'User'; .*\(rename 'User' to 'user'\)",
        "unknown role",
    ),
    Case(
        "prompt-blank",
        ALL,
        "prompt",
        [GOOD, Good(prompt="   "), GOOD],
        r"FILE, row 2: column 'prompt' is empty",
        "empty content",
    ),
    Case(
        "prompt-blank-message",
        ALL,
        "prompt",
        [Good(prompt=_conv("user")), Good(prompt=[_msg("user", "\t")])],
        r"FILE, row 2: column 'prompt' is empty: message 1 has no text",
        "empty content",
    ),
    Case(
        "prompt-no-messages",
        ALL,
        "prompt",
        [Good(prompt=_conv("user")), Good(prompt=[])],
        r"FILE, row 2: column 'prompt' is an empty list of messages",
        "empty content",
    ),
    Case(
        "prompt-message-string",
        TEXT,
        "prompt",
        [GOOD, Good(prompt=["hi"]), GOOD],
        r"FILE, row 2: column 'prompt', message 1 must be a \{role, content\} object, got string 'hi'",
        "malformed message",
    ),
    # --- positive controls: these load ---------------------------------------------------------------------------
    Case("bom-crlf-blank-lines", "jsonl", SHAPES, b"\xef\xbb\xbfGOOD\r\n\r\nGOOD\r\n", expect=[GOOD, GOOD]),
    Case("json-bom-crlf", "json", SHAPES, b"\xef\xbb\xbf[GOOD,\r\n GOOD]\r\n", expect=[GOOD, GOOD]),
    Case("json-lines-in-json-file", "json", SHAPES, b"GOOD\nGOOD\n", expect=[GOOD, GOOD]),
    Case("json-data-object", "json", SHAPES, b'{"version": 1, "data": [GOOD, GOOD]}', expect=[GOOD, GOOD]),
    Case(
        "json-columns-object",
        "json",
        "pair",
        b'{"prompt": ["p", "q"], "chosen": ["a", "c"], "rejected": ["b", "d"]}',
        expect=[{"prompt": "p", "chosen": "a", "rejected": "b"}, {"prompt": "q", "chosen": "c", "rejected": "d"}],
    ),
    Case("non-ascii", ALL, SHAPES, [Good(prompt="Größe? 数学 🎉"), Good(prompt="naïve café — ∑ 😀")]),
    Case("extra-columns", ALL, SHAPES, [Good(source="web", score=0.5), Good(source="book", score=1.5)]),
    Case(
        "roles-and-conversations",
        ALL,
        "pair unpaired prompt",
        [
            Good(
                prompt=[
                    _msg("system", "Use tools."),
                    _msg("user", "2 + 2?"),
                    _msg("assistant", "calc(2+2)"),
                    _msg("tool", "4"),
                ]
            )
        ]
        * 2,
    ),
    Case("shared-prompt-ids", ALL, "pair unpaired", [Good(prompt_id="a", id=1), Good(prompt_id="a", id=2)]),
]
