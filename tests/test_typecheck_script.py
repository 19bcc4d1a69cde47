"""scripts/typecheck.py: mypy sees callbacks/ and configs/ as hl_lightning.callbacks and hl_lightning.configs."""

from scripts.typecheck import ROOT, link_tree, package_dirs, repo_path


def test_the_linked_package_holds_the_mapped_folders(tmp_path):
    tree = link_tree(ROOT, tmp_path)
    package = tree / "hl_lightning"
    assert package_dirs() == {"hl_lightning.callbacks": "callbacks", "hl_lightning.configs": "configs"}
    assert (package / "callbacks" / "ref_sync.py").resolve() == ROOT / "callbacks" / "ref_sync.py"
    assert (package / "configs" / "__init__.py").resolve() == ROOT / "configs" / "__init__.py"
    assert (package / "modules" / "base.py").resolve() == ROOT / "hl_lightning" / "modules" / "base.py"
    assert not (package / "__pycache__").exists()


def test_findings_are_reported_at_repository_paths(tmp_path):
    tree = link_tree(ROOT, tmp_path)
    line = 'hl_lightning/callbacks/ref_sync.py:3: error: Name "x" is not defined  [name-defined]'
    assert repo_path(line, tree, ROOT) == 'callbacks/ref_sync.py:3: error: Name "x" is not defined  [name-defined]'
    inside = "hl_lightning/cli.py:7: note: see here"
    assert repo_path(inside, tree, ROOT) == inside  # a file of hl_lightning/ keeps its path
    summary = "Found 1 error in 1 file (checked 84 source files)"
    assert repo_path(summary, tree, ROOT) == summary
