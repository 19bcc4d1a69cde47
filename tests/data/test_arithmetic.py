"""The arithmetic task: answer parsing, the generator's determinism and the shipped files."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from hl_lightning.data import is_correct, parse_final_number
from hl_lightning.data.arithmetic import DATA_DIR, make_rows
from hl_lightning.data.rows import (
    normalize_group,
    normalize_pair,
    normalize_unpaired,
    process_rows,
    read_rows,
)

SCRIPT = Path(__file__).parents[2] / "scripts" / "make_arithmetic_data.py"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12 + 7 = 19.", 19),
        ("The answer is -16.", -16),
        ("That makes 1,234", 1234),
        ("-1,234,567", -1234567),
        ("7-3", 3),
        ("x=-5", -5),
        ("3.0", 3),
        ("it is 3.5", None),
        ("no number", None),
        ("", None),
        ("first 4 then 12,3456", 3456),
        ("minus \u22128", -8),
        ("1, 2, 3", 3),
    ],
)
def test_parse_final_number(text, expected):
    assert parse_final_number(text) == expected


def test_is_correct():
    assert is_correct("5 * 6 = 30.", 30) and not is_correct("5 * 6 = 31.", 30) and not is_correct("?", 1)


def test_generator_is_deterministic(tmp_path):
    spec = importlib.util.spec_from_file_location("make_arithmetic_data", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.main(["--out", str(tmp_path), "--seed", "0"])
    shipped = sorted(p.name for p in DATA_DIR.glob("*.jsonl"))
    assert shipped == sorted(p.name for p in tmp_path.glob("*.jsonl")) and len(shipped) == 9  # 8 files + the pool
    for name in shipped:
        assert (tmp_path / name).read_bytes() == (DATA_DIR / name).read_bytes(), name
    assert make_rows(seed=1, n_train=20, n_test=5) != make_rows(seed=0, n_train=20, n_test=5)


def test_shipped_files_are_consistent():
    rows = {p.stem: [json.loads(x) for x in p.read_text().splitlines()] for p in DATA_DIR.glob("*.jsonl")}
    sizes = {"pairs": (400, 400), "unpaired": (800, 800), "groups": (400, 400), "prompts": (400, 400)}
    for kind, (n_train, n_test) in sizes.items():
        assert (len(rows[f"{kind}_train"]), len(rows[f"{kind}_test"])) == (n_train, n_test)
    train = {r["prompt"] for r in rows["pairs_train"]}
    assert len(train) == 400 and not train & {r["prompt"] for r in rows["pairs_test"]}
    for row in rows["pairs_train"] + rows["pairs_test"]:
        assert is_correct(row["chosen"], row["answer"]) and not is_correct(row["rejected"], row["answer"])
    for row in rows["groups_train"]:
        assert len(row["completions"]) == 4 and sum(row["rewards"]) in (1.0, 2.0)
        assert row["rewards"] == [float(is_correct(c, row["answer"])) for c in row["completions"]]
    assert all(is_correct(r["completion"], r["answer"]) == r["label"] for r in rows["unpaired_train"])
    assert set(rows["prompts_test"][0]) == {"prompt", "answer"}


@pytest.mark.parametrize(
    ("kind", "normalize"),
    [
        ("pairs", normalize_pair),
        ("unpaired", normalize_unpaired),
        ("groups", normalize_group),
    ],
)
def test_shipped_files_have_no_invalid_rows(kind, normalize):
    for split in ("train", "test"):
        path = DATA_DIR / f"{kind}_{split}.jsonl"
        kept, dropped = process_rows(read_rows(path), normalize, str(path), skip_invalid=True)
        assert not dropped and isinstance(kept[0][1]["answer"], int)
