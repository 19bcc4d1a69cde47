"""The documentation: every ```python block of docs/**/*.md runs (README.md's: tests/test_readme.py), the metrics
reference names every metric the code logs, and the pages speak to users (no development-log wording).

Each page's python blocks run in order, in a fresh working directory, sharing one namespace (a later block may use
what an earlier one defined), on the tiny random model. A block that is not meant to run is tagged ``text``,
``bash`` or ``yaml``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(page: Path) -> list[str]:
    """The page's ```python blocks, in order."""
    return BLOCK.findall(page.read_text(encoding="utf-8"))


def run_page(page: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """Run the page's python blocks in order in ``workdir`` with one shared namespace; return the namespace."""
    monkeypatch.chdir(workdir)
    label = page.relative_to(REPO) if page.is_relative_to(REPO) else page.name
    namespace: dict = {"__name__": f"docs_page_{page.stem}"}
    for i, code in enumerate(python_blocks(page), 1):
        exec(compile(code, f"{label} (python block {i})", "exec"), namespace)
    return namespace


def _own_data(ns: dict, workdir: Path) -> None:
    assert ns["own"].global_step == 2
    batch = ns["collate"](list(enumerate(ns["PAIRS"])))
    assert batch.rows().shared == [[0, 2], [1, 3]] and batch.chosen.keys.tolist() == [0, 2]


# What a page's example must have done, beyond the asserts the page shows.
CHECKS: dict[str, Callable[[dict, Path], None]] = {"docs/guides/own-data.md": _own_data}
RUNNABLE = [p for p in PAGES[1:] if python_blocks(p)]  # README.md runs in tests/test_readme.py


def test_the_pages_with_examples_are_found():
    names = {p.relative_to(REPO).as_posix() for p in RUNNABLE}
    assert set(CHECKS) <= names
    assert {"docs/getting-started.md", "docs/guides/online.md", "docs/guides/lora.md"} <= names


@pytest.mark.slow
@pytest.mark.parametrize("page", RUNNABLE, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_python_block_of_a_page_runs(page, tmp_path, monkeypatch):
    namespace = run_page(page, tmp_path, monkeypatch)
    check = CHECKS.get(page.relative_to(REPO).as_posix())
    if check is not None:
        check(namespace, tmp_path)


def test_a_failing_block_fails_the_page(tmp_path, monkeypatch):
    page = tmp_path / "page.md"
    page.write_text("```python\nx = 1\n```\n\n```bash\nexit 1\n```\n\n```python\nassert x == 2\n```\n")
    assert python_blocks(page) == ["x = 1\n", "assert x == 2\n"]  # the bash block is not run
    with pytest.raises(AssertionError):
        run_page(page, tmp_path, monkeypatch)


# ------------------------------------------------------------------------------------------------ metrics reference
METRIC = re.compile(r"""["']((?:rewards|logps|humanline|rollout|reward|completions|train|eval)/[a-z_]+)["']""")
NOT_LOGGED = {"rollout/seconds"}  # summed into rollout/time_frac, then dropped from the logged metrics
PLAIN = {"loss", "kl", "reward", "reward_std", "clip_ratio", "accuracy", "eval/exact_match", "eval/win_rate"}


def logged_metric_names() -> set[str]:
    """Every metric name the code spells out, plus the names built from parts (``eval/{metric}``,
    ``rewards/{group}``)."""
    names = set(PLAIN)
    for folder in ("hl_lightning", "callbacks"):
        for path in (REPO / folder).rglob("*.py"):
            names |= set(METRIC.findall(path.read_text(encoding="utf-8")))
    return names - NOT_LOGGED


def test_the_metrics_reference_defines_every_logged_metric():
    reference = (REPO / "docs" / "metrics.md").read_text(encoding="utf-8")
    defined = set(re.findall(r"^\| `([^`]+)`(?:, `([^`]+)`)? \|", reference, re.M))
    defined_names = {name for pair in defined for name in pair if name}
    missing = sorted(logged_metric_names() - defined_names)
    assert not missing, f"docs/metrics.md has no row for {missing}"
    assert {"humanline/syncs", "humanline/unclipped_frac", "rollout/time_frac", "train/skipped_steps"} <= defined_names


# ------------------------------------------------------------------------------------------------------ user wording
DEV_LOG = re.compile(
    r"\bsessions?\b|\bbudgets?\b|issue\s*#|\bthe issue\b|\bthis machine\b|no gpu was lent|\bsuperseded\b"
    r"|the run before|\btargets?\b|:\s*met\b|cut to fit|rerun in this|\blast session\b",
    re.I,
)
WORDED = [*PAGES, REPO / "benchmarks" / "RESULTS.md"]


@pytest.mark.parametrize("page", WORDED, ids=lambda p: p.relative_to(REPO).as_posix())
def test_the_pages_speak_to_users(page):
    hits = [
        f"{page.relative_to(REPO)}:{n}: {line.strip()}"
        for n, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1)
        if DEV_LOG.search(line)
    ]
    assert not hits, "development-log wording in the docs:\n" + "\n".join(hits)


@pytest.mark.parametrize(
    "line",
    [
        "Rerun in this session: 4 min",
        "the issue asks for KTO too",
        "target >= 70 %: met",
        "What was cut to fit",
        "No GPU was lent",
        "see issue #12",
        "within the ~6 h budget",
        "The run before this one gave 1.36x",
    ],
)
def test_the_wording_check_catches_development_log_lines(line):
    assert DEV_LOG.search(line)


@pytest.mark.parametrize("line", ["target_modules: [q_proj, v_proj]", "the issues a reward can have", "metadata"])
def test_the_wording_check_lets_user_words_through(line):
    assert not DEV_LOG.search(line)
