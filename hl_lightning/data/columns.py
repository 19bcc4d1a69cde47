"""Which TRL layout a file holds, decided once per file from its columns: never a silent guess.

A data module reads some layouts (:data:`PAIRS`, :data:`UNPAIRED`, :data:`GROUPS`, :data:`PROMPTS`).
:func:`check_layout` runs once per file, before any row is checked: it picks the layout by its marker column,
refuses a file that holds the markers of two layouts or of none, refuses a column the layout needs that no row
has (naming a column that may hold it under another name), and decides the implicit prompt of pairs: a pair
file without ``prompt`` takes each prompt from the text ``chosen`` and ``rejected`` both start with (TRL's
implicit prompt) only when no other text column could be the prompt, or when ``columns`` maps ``prompt`` to
null. Each decision is logged in one line (docs/data.md lists them all).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from hl_lightning.data.normalize import normalize_pair, similar_column
from hl_lightning.data.readers import BadRow, DataError, show

log = logging.getLogger(__name__)

KNOWN = frozenset(
    {"prompt", "chosen", "rejected", "completion", "completions", "label", "rewards"}
    | {"id", "prompt_id", "chosen_score", "rejected_score", "score"}
)  # the columns some reader of ours uses; any other text column might be a prompt under another name


@dataclass(frozen=True)
class Layout:
    """A TRL row layout.

    Attributes:
        name: what its rows are called in messages ("pairs").
        marker: the column whose presence says a file has this layout.
        needs: the columns every row needs.
    """

    name: str
    marker: str
    needs: tuple[str, ...]

    def describe(self) -> str:
        """``name (column, column, ...)`` for messages."""
        return f"{self.name} ({', '.join(self.needs)})"


PAIRS = Layout("pairs", "chosen", ("chosen", "rejected"))  # ``prompt`` is optional: the implicit prompt
UNPAIRED = Layout("unpaired rows", "completion", ("prompt", "completion", "label"))
GROUPS = Layout("groups", "completions", ("prompt", "completions", "rewards"))
PROMPTS = Layout("prompts", "prompt", ("prompt",))


def _is_text(value: object) -> bool:
    """A string, or a list of ``{role, content}`` messages: what a prompt can be."""
    if isinstance(value, str):
        return True
    return isinstance(value, list) and bool(value) and all(isinstance(m, dict) and "content" in m for m in value)


def _fix(column: str, names: list[str]) -> str:
    similar = similar_column(column, names)
    if similar:
        return f"if {similar!r} holds it, map it with the columns option: columns: {{{column}: {similar}}}"
    return f"add a {column!r} field to every row (the columns option maps a column of another name)"


def _pick(source: str, layouts: tuple[Layout, ...], names: list[str]) -> Layout:
    found = [layout for layout in layouts if layout.marker in names]
    if len(found) > 1:
        a, b = found[:2]
        raise DataError(
            f"{source} holds the columns of both {a.name} ({a.marker!r}) and {b.name} ({b.marker!r}), so its "
            f"layout is ambiguous (columns found: {names}); keep one layout per file"
        )
    if not found:
        needs = " or ".join(layout.describe() for layout in layouts)
        raise DataError(
            f"{source}: column {layouts[0].marker!r} is missing (columns found: {names}): this data module reads "
            f"{needs}; {_fix(layouts[0].marker, names)}"
        )
    return found[0]


def _implicit_prompt(source: str, rows: list[dict], names: list[str], columns: dict) -> None:
    """Refuse the implicit prompt when another text column could be the prompt, else log the decision."""
    candidates = [n for n in names if n not in KNOWN and any(_is_text(row.get(n)) for row in rows)]
    if candidates and "prompt" not in columns:
        raise DataError(
            f"{source}: pairs without a 'prompt' column, but the text column(s) {candidates} could hold the prompt "
            f"(columns found: {names}); say which: columns: {{prompt: {candidates[0]}}}, or, if chosen and rejected "
            "hold the whole conversations, columns: {prompt: null} to take each prompt from the text both start "
            "with (TRL's implicit prompt)"
        )
    try:
        example = normalize_pair(rows[0])
        shown = f", e.g. {getattr(rows[0], 'where', None) or 'row 1'}: prompt {show(example['prompt'][-1]['content'])}"
        shown += f", chosen {show(example['chosen'][0]['content'])}"
    except DataError:
        shown = ""
    log.info(
        "%s: no 'prompt' column: each prompt is the text chosen and rejected both start with (TRL's implicit prompt)%s",
        source,
        shown,
    )


def check_layout(
    rows: list[dict], source: str, layouts: tuple[Layout, ...], columns: dict[str, str | None] | None = None
) -> Layout | None:
    """The layout of a file's rows (after column mapping), checked once for the whole file.

    Args:
        rows: the rows of :func:`~hl_lightning.data.rows.read_rows` (every row has every column of the file).
        source: the file, named in messages.
        layouts: the layouts the data module reads, in order.
        columns: the columns option the rows were mapped with (``{"prompt": None}`` asks for the implicit prompt).

    Returns:
        The layout, or None when no row could be read (the rows then raise their own errors).

    Raises:
        DataError: one line naming the file, the columns found and the fix (see the module docstring).
    """
    good = [row for row in rows if not isinstance(row, BadRow)]
    if not good:
        return None
    keys = list(good[0])
    names = [key for key in keys if any(row.get(key) is not None for row in good)]
    layout = _pick(source, layouts, names)
    for column in layout.needs:
        if column not in names:
            raise DataError(
                f"{source}: column {column!r} is missing (columns found: {names}): {layout.name} need it; "
                f"{_fix(column, names)}"
            )
    if layout is PAIRS and "prompt" not in keys:
        _implicit_prompt(source, good, names, columns or {})
    return layout
