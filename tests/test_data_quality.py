"""``hl-lightning data-quality``: every completion's mean per-token log-prob under the model, checked against a plain
forward pass for each data family, plus the report (table, JSON, JSON Lines, PNG), truncation and one-line errors."""

import json
from functools import cache
from pathlib import Path

import pytest
import torch

from hl_lightning.cli import main
from hl_lightning.data_quality import role_stats, score_file, summarize, verdict
from hl_lightning.data_quality.score import Score
from hl_lightning.models.loading import load_causal_lm, load_tokenizer

REPO = Path(__file__).resolve().parents[1]
ARITHMETIC_PAIRS = REPO / "hl_lightning" / "data" / "arithmetic" / "pairs_train.jsonl"

PAIRS = [
    {"prompt": "What is 2 + 2?", "chosen": "4.", "rejected": "It is five, as far as I can tell."},
    {"prompt": "Name a colour.", "chosen": "Blue, like the sky on a clear day.", "rejected": "Seven."},
]
UNPAIRED = [
    {"prompt": "Say hi.", "completion": "Hello there!", "label": True},
    {"prompt": "Say hi.", "completion": "No.", "label": False},
    {"prompt": [{"role": "user", "content": "Count to three."}], "completion": "1, 2, 3.", "label": True},
]
GROUPS = [
    {"prompt": "What is 3 * 3?", "completions": ["9.", "It is 6.", "Nine, I think."], "rewards": [1.0, 0.0, 1.0]},
    {"prompt": "What is 1 + 1?", "completions": ["2", "11, written as digits."], "rewards": [1.0, 0.0]},
]


@cache
def reference():
    """The tiny random model and its tokenizer, loaded once for the hand computations."""
    return load_tokenizer("tiny-random"), load_causal_lm("tiny-random").eval()


def by_hand(prompt: str | list, completion: str, max_length: int = 256, max_prompt_length: int = 128):
    """(mean log-prob, tokens, truncated) of one completion from a plain unpadded forward over the whole sequence."""
    tokenizer, model = reference()
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
    prompt_text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template([*messages, {"role": "assistant", "content": completion}], tokenize=False)
    prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    completion_ids = tokenizer(full[len(prompt_text) :], add_special_tokens=False)["input_ids"]
    truncated = len(prompt_ids) > max_prompt_length or len(prompt_ids) + len(completion_ids) > max_length
    prompt_ids = prompt_ids[-max_prompt_length:]
    completion_ids = completion_ids[: max_length - len(prompt_ids)]
    ids = torch.tensor([prompt_ids + completion_ids])
    with torch.no_grad():
        logps = model(ids).logits[0, :-1].float().log_softmax(-1)
    targets = ids[0, 1:]
    token_logps = logps.gather(-1, targets[:, None])[:, 0][len(prompt_ids) - 1 :]
    return token_logps.mean().item(), len(completion_ids), truncated


def expected(rows: list[dict]) -> list[tuple[int, str, int, str | list, str]]:
    """(row, role, member, prompt, completion) of every completion of ``rows``, in file order."""
    out = []
    for number, row in enumerate(rows, start=1):
        if "chosen" in row:
            out += [(number, "chosen", 0, row["prompt"], row["chosen"])]
            out += [(number, "rejected", 1, row["prompt"], row["rejected"])]
        elif "completion" in row:
            out.append((number, "desirable" if row["label"] else "undesirable", 0, row["prompt"], row["completion"]))
        else:
            out += [(number, "member", i, row["prompt"], c) for i, c in enumerate(row["completions"])]
    return out


@pytest.mark.parametrize("rows", [PAIRS, UNPAIRED, GROUPS], ids=["pairs", "unpaired", "groups"])
def test_each_completion_is_its_plain_forward_mean(rows, write_jsonl):
    path = write_jsonl("data.jsonl", rows)
    scores = score_file("tiny-random", path, batch_size=2, device="cpu", progress=False)
    assert [(s.row, s.role, s.member) for s in scores] == [e[:3] for e in expected(rows)]
    for score, (_, _, _, prompt, completion) in zip(scores, expected(rows), strict=True):
        mean, tokens, truncated = by_hand(prompt, completion)
        assert score.mean_logp == pytest.approx(mean, abs=1e-5)
        assert (score.tokens, score.truncated) == (tokens, truncated)


def test_truncation_is_flagged_per_completion_and_scores_the_kept_tokens(write_jsonl):
    long = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen."
    rows = [
        {"prompt": "Count.", "chosen": "One.", "rejected": long},
        {"prompt": "Hi.", "chosen": "Hi.", "rejected": "Bye."},
    ]
    path = write_jsonl("long.jsonl", rows)
    scores = score_file("tiny-random", path, max_length=40, max_prompt_length=32, device="cpu", progress=False)
    assert [s.truncated for s in scores] == [False, True, False, False]
    mean, tokens, truncated = by_hand("Count.", long, max_length=40, max_prompt_length=32)
    assert truncated and scores[1].tokens == tokens and scores[1].mean_logp == pytest.approx(mean, abs=1e-5)
    summary = summarize(scores, data=str(path), model="tiny-random")
    assert summary["roles"]["rejected"]["truncated"] == 0.5 and summary["roles"]["all"]["truncated"] == 0.25


def test_stats_and_verdict_against_the_paper_quartile():
    values = [-2.0, -1.03, -0.5, -0.36, -0.1]
    scores = [Score(i + 1, "chosen", 0, v, 4, i == 0) for i, v in enumerate(values)]
    stats = role_stats(scores)
    assert stats["n"] == 5 and stats["mean"] == pytest.approx(sum(values) / 5, rel=1e-12)
    assert (stats["q1"], stats["median"], stats["q3"]) == pytest.approx((-1.03, -0.5, -0.36), rel=1e-12)
    assert stats["below_worst_quartile"] == pytest.approx(0.2) and stats["in_or_below_worst_quartile"] == 0.8
    assert stats["truncated"] == pytest.approx(0.2)
    assert verdict(-1.031) == "below the paper's worst quartile: humanline's assumption may not hold"
    assert verdict(-1.03).startswith("in the paper's worst quartile") and verdict(-0.36).startswith("in the")
    assert verdict(-0.359).startswith("above the paper's worst quartile")


def test_cli_end_to_end_on_the_shipped_pairs(tmp_path, capsys):
    out, rows = tmp_path / "report", tmp_path / "rows.jsonl"
    args = ["--model", "tiny-random", "--data", str(ARITHMETIC_PAIRS), "--limit", "3", "--batch-size", "4"]
    main(["data-quality", *args, "--device", "cpu", "--report-dir", str(out), "--output", str(rows)])
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == f"{ARITHMETIC_PAIRS} under tiny-random: mean per-token log-prob of each completion"
    assert printed[1].split()[:2] == ["role", "n"] and [line.split()[:2] for line in printed[2:5]] == [
        ["chosen", "3"],
        ["rejected", "3"],
        ["all", "6"],
    ]
    assert "Verdict: below the paper's worst quartile: humanline's assumption may not hold" in printed
    summary = json.loads((out / "pairs_train-summary.json").read_text())
    assert summary["limit"] == 3 and summary["paper_worst_quartile"] == [-1.03, -0.36]
    assert (out / "pairs_train-logps.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = [json.loads(line) for line in rows.read_text().splitlines()]
    assert [(r["row"], r["role"]) for r in lines] == [(n, role) for n in (1, 2, 3) for role in ("chosen", "rejected")]
    first = json.loads(ARITHMETIC_PAIRS.read_text().splitlines()[0])
    assert lines[1]["mean_logp"] == pytest.approx(by_hand(first["prompt"], first["rejected"])[0], abs=1e-5)
    assert summary["roles"]["all"]["mean"] == pytest.approx(sum(r["mean_logp"] for r in lines) / 6, rel=1e-9)


def error_of(args: list[str], capsys) -> str:
    """The one-line message of a data-quality command that must exit with status 2."""
    with pytest.raises(SystemExit, match=r"^2$"):
        main(["data-quality", "--model", "tiny-random", "--device", "cpu", *args])
    message = capsys.readouterr().err.splitlines()
    assert message[-1].startswith("(full traceback:")
    return message[-2]


def test_bad_files_and_options_are_one_line(tmp_path, write_jsonl, capsys):
    bad = write_jsonl("bad.jsonl", [PAIRS[0], {"prompt": "x", "chosen": "y", "rejected": None}])
    assert error_of(["--data", str(bad), "--report-dir", str(tmp_path)], capsys).startswith(f"error: {bad}, row 2: ")
    asked = write_jsonl("asked.jsonl", [{"question": "2+2?", "chosen": "4", "rejected": "5"}])
    refused = error_of(["--data", str(asked)], capsys)
    assert "'question'" in refused and "columns: {prompt: question}" in refused
    mapped = error_of(["--data", str(asked), "--columns", "{prompt: query}"], capsys)
    assert "column 'query' (mapped to 'prompt' by the columns option) is not in the file" in mapped
    assert "--columns" in error_of(["--data", str(asked), "--columns", "[prompt]"], capsys)
    assert "limit=0" in error_of(["--data", str(asked), "--limit", "0"], capsys)
    assert "dtype='fp8'" in error_of(["--data", str(asked), "--dtype", "fp8"], capsys)
    assert error_of(["--data", str(tmp_path / "none.jsonl")], capsys).endswith(
        "no such file or directory. "
        + (
            "Pass a local JSONL, JSON or Parquet file or a datasets.save_to_disk directory (Hub datasets are not "
            "downloaded: save one locally)."
        )
    )


def test_columns_option_maps_the_prompt(tmp_path, write_jsonl):
    asked = write_jsonl("asked.jsonl", [{"question": "2+2?", "chosen": "4", "rejected": "5"}])
    plain = write_jsonl("plain.jsonl", [{"prompt": "2+2?", "chosen": "4", "rejected": "5"}])
    mapped = score_file("tiny-random", asked, columns={"prompt": "question"}, device="cpu", progress=False)
    assert mapped == score_file("tiny-random", plain, device="cpu", progress=False)


def test_without_matplotlib_the_summary_is_still_written(tmp_path, write_jsonl, monkeypatch, capsys):
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)
    path = write_jsonl("pairs.jsonl", PAIRS)
    main(
        [
            "data-quality",
            "--model",
            "tiny-random",
            "--data",
            str(path),
            "--device",
            "cpu",
            "--report-dir",
            str(tmp_path),
        ]
    )
    printed = capsys.readouterr().out
    assert "Histogram skipped: " in printed and "pip install 'hl-lightning[plots]'" in printed
    assert (tmp_path / "pairs-summary.json").exists() and not (tmp_path / "pairs-logps.png").exists()
