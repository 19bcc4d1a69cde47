"""The import graph of the library: layers point one way and packages import each other in no cycle.

objectives <- models <- data <- modules / online <- callbacks <- the CLI and tools. A module imports only from its
own layer or the layers below it (every import counts: at the top, inside a function, under TYPE_CHECKING).
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = [
    {"objectives", "runtime", "checkpointing", "configs_compose", "extras", "tables"},  # pure losses and helpers
    {"models"},  # loading, log-probs, decoding
    {"data", "rewards"},  # files, batches, scores
    {"modules", "online", "evaluation"},  # the LightningModules and online data
    {"callbacks"},  # Lightning callbacks
    # entry points and tools
    {"cli", "cli_errors", "tracking", "resume", "reproduce", "configs_catalog", "data_quality", "__main__"},
]
RANK = {part: rank for rank, parts in enumerate(LAYERS) for part in parts}


def part_of(path: Path) -> str:
    """The layer part of a source file: its subpackage, or its module name at the top of hl_lightning."""
    rel = path.relative_to(ROOT)
    if rel.parts[0] == "callbacks":
        return "callbacks"
    return rel.parts[1] if len(rel.parts) > 2 else rel.stem


def imported_parts(path: Path) -> set[str]:
    """The hl_lightning parts a file imports (``hl_lightning.callbacks`` is the callbacks folder)."""
    parts = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names if node.module == "hl_lightning"]
        parts |= {n.split(".")[1] for n in names if n.startswith("hl_lightning.")}
    return parts


def sources() -> list[Path]:
    files = sorted((ROOT / "hl_lightning").rglob("*.py")) + sorted((ROOT / "callbacks").glob("*.py"))
    return [f for f in files if f != ROOT / "hl_lightning" / "__init__.py"]  # the facade re-exports everything


def test_every_part_has_a_layer():
    assert {part_of(f) for f in sources()} <= set(RANK), {part_of(f) for f in sources()} - set(RANK)


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_down(path):
    own = part_of(path)
    upward = {p for p in imported_parts(path) if RANK.get(p, -1) > RANK[own]}
    assert not upward, f"{path.relative_to(ROOT)} ({own}, layer {RANK[own]}) imports from a higher layer: {upward}"


def test_no_cycle_between_packages():
    edges: dict[str, set[str]] = {}
    for path in sources():
        edges.setdefault(part_of(path), set()).update(imported_parts(path) - {part_of(path)})

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in edges.get(start, ()))

    cycles = sorted(part for part in edges if reaches(part, part, set()))
    assert not cycles, f"packages in an import cycle: {cycles}"


def test_the_check_sees_an_upward_import(tmp_path):
    """The parser finds each import form (so the tests above can fail)."""
    src = tmp_path / "x.py"
    src.write_text(
        "import hl_lightning.cli\nfrom hl_lightning.online import rollout\nfrom hl_lightning import callbacks\n"
        "def f():\n    from hl_lightning.modules.base import AlignmentModule\n"
    )
    assert imported_parts(src) == {"cli", "online", "callbacks", "modules"}


@pytest.mark.parametrize("package", ["data", "online"])
def test_the_data_side_never_reaches_into_the_module(package):
    """Data modules learn about the model only through ``connect`` (``hl_lightning.data.handover``)."""
    for path in sorted((ROOT / "hl_lightning" / package).rglob("*.py")):
        code = "\n".join(line for line in path.read_text().splitlines() if "lightning_module`" not in line)
        assert ".lightning_module" not in code, f"{path.relative_to(ROOT)} reaches into trainer.lightning_module"
