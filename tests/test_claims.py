"""The claim-by-claim reading of a plan's results: verdicts from the CI by hand, one-seed rows marked as hints,
claims naming unknown comparisons refused, and ``hl-lightning reproduce --reading`` on a results file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hl_lightning.reproduce import Plan
from hl_lightning.reproduce import main as reproduce_main
from hl_lightning.reproduce.claims import comparison_line, head_to_head_line, reading, reading_markdown

REPO = Path(__file__).resolve().parents[1]
STUDY = REPO / "configs" / "reproduce" / "study.yaml"


def row(diff: float, low: float, high: float, paired: int = 3, wins: int = 2) -> dict:
    return {"comparison": "b vs a", "a": "x", "b": "y", "diff": diff, "ci": [low, high], "paired": paired, "wins": wins}


def test_a_comparison_is_higher_or_lower_only_when_3_paired_seeds_have_a_ci_without_zero():
    assert comparison_line(row(0.05, 0.01, 0.09)).endswith("3 paired seeds, b won 2): **higher**")
    assert comparison_line(row(-0.05, -0.09, -0.01)).endswith("): **lower**")
    unresolved = comparison_line(row(0.03, -0.02, 0.08))
    assert unresolved == (
        "- b vs a: y − x = +3.0 points [-2.0, +8.0] (95 % CI over seeds; 3 paired seeds, b won 2): "
        "not resolved (anything from -2 to 8 points is still possible)"
    )
    one_seed = comparison_line(row(0.2, 0.1, 0.3, paired=1, wins=1) | {"ci_over": "prompts (seed 0 only)"})
    assert one_seed.endswith(
        "(95 % CI over prompts (seed 0 only); 1 paired seed, b won 1): a hint, not a claim (1 paired seed)"
    )
    assert comparison_line(row(0.2, 0.1, 0.3, paired=2)).endswith("a hint, not a claim (2 paired seeds)")
    unpaired = comparison_line(row(0.2, 0.2, 0.2, paired=0, wins=None))
    assert "unpaired seeds): a hint, not a claim (0 paired seeds)" in unpaired


def test_a_head_to_head_win_rate_is_read_against_one_half():
    h2h = {"comparison": "b against a", "a": "x", "b": "y", "win_rate": 0.61, "ci": [0.55, 0.67], "seeds": 3}
    assert head_to_head_line(h2h | {"prompts": 240}) == (
        "- b against a: y wins 61.0 % [55.0, 67.0] of 240 prompts against x (95 % CI over seeds x prompts; "
        "3 seeds): **higher**"
    )
    assert "not resolved (anything from 40 to 70 % is still possible)" in head_to_head_line(
        h2h | {"prompts": 9, "ci": [0.4, 0.7]}
    )
    assert head_to_head_line(h2h | {"prompts": 9, "seeds": 1}).endswith("a hint, not a claim (1 paired seed)")


def test_each_claim_lists_its_rows_in_order_what_has_not_run_and_the_chance_of_a_false_verdict():
    summary = {"comparisons": [row(0.05, 0.01, 0.09), row(0.1, 0.0, 0.2, paired=1) | {"comparison": "hint"}]}
    lines = reading(summary, {"Claim one": ["missing", "b vs a"], "Claim two": ["b vs a", "hint"]})
    assert lines[:4] == [
        "**The paper: Claim one**",
        "",
        "- missing: not run yet",
        comparison_line(row(0.05, 0.01, 0.09)),
    ]
    assert lines[5] == "**The paper: Claim two**"
    assert lines[-1] == (
        "1 of these rows rest on 3 or more paired seeds; were no difference real, about 0.1 of them would still "
        "read higher or lower by chance (95 % CIs)."
    )
    assert reading_markdown(summary, {}) == ""
    assert reading_markdown(summary, {"c": ["b vs a"]}).startswith("\n## Reading, claim by claim\n\n**The paper: c**\n")


def test_a_claim_naming_an_unknown_comparison_is_refused(tmp_path):
    text = STUDY.read_text().replace('["DPO online: humanline vs plain",', '["DPO online: humanline vs plane",')
    (tmp_path / "study.yaml").write_text(text)
    with pytest.raises(ValueError, match=r"claim 'online \+ humanline .*\['DPO online: humanline vs plane'\] are"):
        Plan.load(tmp_path / "study.yaml")


def test_reproduce_reading_prints_the_study_reading_or_says_there_is_none(tmp_path, capsys):
    reproduce_main(["--plan", str(STUDY), "--out", str(tmp_path), "--reading"])
    assert capsys.readouterr().out.startswith("No results of plan 'study' yet")
    comparison = row(0.05, 0.01, 0.09) | {"comparison": "(a) DPO: online vs offline"}
    (tmp_path / "results.json").write_text(json.dumps({"runs": 7, "comparisons": [comparison]}))
    reproduce_main(["--plan", str(STUDY), "--out", str(tmp_path), "--reading"])
    out = capsys.readouterr().out
    assert out.startswith(f"What plan 'study' found, claim by claim ({tmp_path / 'results.json'}, 7 runs):")
    assert comparison_line(comparison) in out and "- (a) GRPO: online vs offline: not run yet" in out
