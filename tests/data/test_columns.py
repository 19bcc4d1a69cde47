"""Nothing is read as something else silently: each case of the table in docs/data.md ("Data formats and errors").

A file's layout is decided once per file (``hl_lightning.data.columns``); every other place where the loaders
could fall back is refused with one ``DataError`` or logged as a decision in one line. One test per row of the
table (the rows whose test lives elsewhere name it there).
"""

from __future__ import annotations

import json
import logging
import re

import pytest

from hl_lightning.data import DataError, GroupDataModule, PreferenceDataModule, UnpairedPreferenceDataModule
from hl_lightning.data.prompts import load_prompts, tokenizer_spec
from hl_lightning.data.rows import read_rows

# TRL's layout with the prompt column under another name: read as implicit-prompt pairs, the prompt would be
# "30 + 28 =" (the shared start of the answers) and the question would be lost.
QUESTION = [
    {"question": f"What is 30 + {n}?", "chosen": f"30 + {n} = {30 + n}.", "rejected": f"30 + {n} = {31 + n}."}
    for n in range(20, 30)
]
IMPLICIT = [{k: v for k, v in row.items() if k != "question"} for row in QUESTION]
MODULES = [PreferenceDataModule, UnpairedPreferenceDataModule, GroupDataModule]


def _ready(cls, path, **kwargs):
    module = cls(path=str(path), tokenizer="tiny-random", **kwargs)
    module.setup("fit")
    return module


def _text(tokenizer, ids, mask):
    return tokenizer.decode([i for i, m in zip(ids.tolist(), mask.tolist(), strict=True) if m])


@pytest.mark.parametrize("cls", MODULES, ids=lambda c: c.__name__)
def test_pairs_with_an_unused_text_column_are_refused_naming_the_fix(write_jsonl, cls):
    path = write_jsonl("qa.jsonl", QUESTION)
    message = (
        r"qa.jsonl: pairs without a 'prompt' column, but the text column\(s\) \['question'\] could hold the prompt "
        r"\(columns found: \['question', 'chosen', 'rejected'\]\); say which: columns: \{prompt: question\}"
    )
    with pytest.raises(DataError, match=message) as err:
        _ready(cls, path)
    assert "\n" not in str(err.value)


def test_mapping_the_question_trains_on_the_question(write_jsonl, tokenizer):
    dm = _ready(PreferenceDataModule, write_jsonl("qa.jsonl", QUESTION), columns={"prompt": "question"})
    rows = next(iter(dm.train_dataloader())).chosen
    prompt = tokenizer.decode(
        [
            i
            for i, m, a in zip(rows.input_ids[0], rows.completion_mask[0], rows.attention_mask[0], strict=True)
            if a and not m
        ]
    )
    assert re.search(r"What is 30 \+ 2\d\?", prompt)
    assert re.match(r"30 \+ 2\d = 5\d\.", _text(tokenizer, rows.input_ids[0], rows.completion_mask[0]))


def test_implicit_prompt_without_another_text_column_is_logged_once(write_jsonl, caplog):
    with caplog.at_level(logging.INFO, logger="hl_lightning.data.columns"):
        dm = _ready(PreferenceDataModule, write_jsonl("implicit.jsonl", [dict(r, answer=1) for r in IMPLICIT]))
    lines = [r.getMessage() for r in caplog.records if "implicit prompt" in r.getMessage()]
    assert lines == [
        f"{dm.path}: no 'prompt' column: each prompt is the text chosen and rejected both start with (TRL's "
        "implicit prompt), e.g. row 1: prompt '30 + 20 = 5', chosen '0.'"
    ]  # TRL's split cuts "50." and "51." after their shared "5": the example line shows it


def test_prompt_null_asks_for_the_implicit_prompt(write_jsonl, caplog):
    rows = [dict(r, prompt="ignored", source="hh") for r in IMPLICIT]
    with caplog.at_level(logging.INFO):
        dm = _ready(PreferenceDataModule, write_jsonl("p.jsonl", rows), columns={"prompt": None})
    assert len(dm.train_set) + len(dm.val_set) == 10
    assert "p.jsonl: the file's own 'prompt' column is not read: the columns option sets it to null" in caplog.text
    assert "(TRL's implicit prompt)" in caplog.text


def test_a_null_prompt_in_a_file_with_prompts_is_an_error(write_jsonl):
    rows = [dict(r, prompt="Add.") for r in IMPLICIT]
    rows[3]["prompt"] = None
    with pytest.raises(DataError, match=r"p.jsonl, row 4: column 'prompt' has no value in this row"):
        _ready(PreferenceDataModule, write_jsonl("p.jsonl", rows))


@pytest.mark.parametrize(
    ("cls", "rows"),
    [
        (UnpairedPreferenceDataModule, [{"question": "q", "completion": "a", "label": True}] * 4),
        (GroupDataModule, [{"question": "q", "completions": ["a", "b"], "rewards": [1, 0]}] * 4),
    ],
    ids=["unpaired", "groups"],
)
def test_unpaired_and_group_files_without_prompt_name_the_column(write_jsonl, cls, rows):
    path = write_jsonl("f.jsonl", [dict(row, id=i) for i, row in enumerate(rows)])
    with pytest.raises(
        DataError,
        match=r"f.jsonl: column 'prompt' is missing \(columns found: \['question', .*"
        r"if 'question' holds it, map it with the columns option: columns: \{prompt: question\}",
    ):
        _ready(cls, path)


def test_online_prompt_files_without_prompt_name_the_column(write_jsonl, tokenizer):
    path = write_jsonl("p.jsonl", [{"instruction": "Say hi.", "answer": 1}])
    with pytest.raises(DataError, match=r"p.jsonl: column 'prompt' is missing.*columns: \{prompt: instruction\}"):
        load_prompts(path, tokenizer, 64)


@pytest.mark.parametrize(
    ("cls", "extra", "other"),
    [(UnpairedPreferenceDataModule, "completion", "unpaired rows"), (GroupDataModule, "completions", "groups")],
)
def test_a_file_with_two_layouts_is_refused(write_jsonl, cls, extra, other):
    value = ["x", "y"] if extra == "completions" else "x"
    rows = [dict(r, prompt="p", **{extra: value}) for r in IMPLICIT]
    with pytest.raises(DataError, match=rf"f.jsonl holds the columns of both {other} \('{extra}'\) and pairs"):
        _ready(cls, write_jsonl("f.jsonl", rows))


def test_one_score_column_alone_is_refused(write_jsonl):
    rows = [dict(r, prompt="p", chosen_score=1.0) for r in IMPLICIT]
    with pytest.raises(DataError, match=r"f\.jsonl: pairs with a 'chosen_score' column but no 'rejected_score'"):
        _ready(GroupDataModule, write_jsonl("f.jsonl", rows))


def test_a_null_score_is_an_error_not_a_default(write_jsonl):
    rows = [dict(r, prompt="p", chosen_score=1.0, rejected_score=0.0) for r in IMPLICIT]
    rows[2]["rejected_score"] = None
    with pytest.raises(DataError, match=r"f.jsonl, row 3: column 'rejected_score' has no value in this row"):
        _ready(GroupDataModule, write_jsonl("f.jsonl", rows))


@pytest.mark.parametrize(
    ("cls", "line"),
    [
        (GroupDataModule, "pairs: each becomes a group of two completions with rewards +1 (chosen) and -1 (rejected)"),
        (UnpairedPreferenceDataModule, "pairs: each gives a desirable item (chosen) and an undesirable one (rejected)"),
    ],
)
def test_pairs_read_as_groups_or_items_are_logged(write_jsonl, caplog, cls, line):
    with caplog.at_level(logging.INFO):
        _ready(cls, write_jsonl("f.jsonl", [dict(r, prompt="p", id=i) for i, r in enumerate(IMPLICIT)]))
    assert f"f.jsonl: {line}" in caplog.text


def test_a_shadowed_column_is_logged(write_jsonl, caplog):
    path = write_jsonl("f.jsonl", [{"prompt": "old", "question": "new", "chosen": "a", "rejected": "b"}])
    with caplog.at_level(logging.INFO):
        rows = read_rows(path, {"prompt": "question"})
    assert rows[0]["prompt"] == "new" and "question" not in rows[0]
    assert "f.jsonl: the file's own 'prompt' column is not read: the columns option takes it from 'question'" in (
        caplog.text
    )


def test_a_near_miss_of_our_column_names_is_refused(write_jsonl):
    path = write_jsonl("f.jsonl", [{"question": "q", "chosen": "a", "rejected": "b"}])
    with pytest.raises(DataError, match=r"maps 'promt', a column no data module reads; did you mean 'prompt'\?"):
        read_rows(path, {"promt": "question"})
    assert read_rows(path, {"gold": "question"})[0]["gold"] == "q"  # any other name: an extra column (rewards)


@pytest.mark.parametrize(
    ("doc", "line"),
    [
        (
            {"version": 2, "data": [{"prompt": "p"}]},
            "the rows are the list under key 'data'; the other keys ['version'] are not read",
        ),
        (
            {"prompt": ["p", "q"], "answer": [1, 2]},
            "a JSON object of equally long lists: read as the columns ['prompt', 'answer']",
        ),
    ],
)
def test_json_objects_read_as_rows_are_logged(tmp_path, caplog, doc, line):
    path = tmp_path / "f.json"
    path.write_text(json.dumps(doc))
    with caplog.at_level(logging.INFO):
        assert read_rows(path)[0]["prompt"] == "p"
    assert f"f.json: {line}" in caplog.text


def test_json_lines_in_a_json_file_are_logged(tmp_path, caplog):
    path = tmp_path / "f.json"
    path.write_text('{"prompt": "p"}\n{"prompt": "q"}\n')
    with caplog.at_level(logging.INFO):
        assert [row["prompt"] for row in read_rows(path)] == ["p", "q"]
    assert "f.json holds several JSON values: read as JSON Lines (one object per line)" in caplog.text


def test_the_dropped_last_kto_item_is_logged(write_jsonl, caplog):
    rows = [{"prompt": f"p{i}", "completion": "a", "label": i % 2 == 0} for i in range(7)]
    dm = _ready(UnpairedPreferenceDataModule, write_jsonl("f.jsonl", rows), val_path=write_jsonl("v.jsonl", rows[:2]))
    with caplog.at_level(logging.INFO):
        assert sum(len(b) for b in dm.train_dataloader()) == 6
    assert "7 train items in batches of 2: the last batch, of 1 item, is dropped" in caplog.text


def test_the_smollm2_tokenizer_fallback_is_logged(caplog):
    with caplog.at_level(logging.WARNING):
        assert tokenizer_spec(None, None) == "smollm2"
    assert "it uses the 'smollm2' tokenizer; set the data's tokenizer to the model's spec" in caplog.text
