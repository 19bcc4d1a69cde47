"""The README's Python snippet runs as written (modules + callback in a plain lightning.Trainer)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_snippet_runs(tmp_path, monkeypatch):
    section = README.read_text().split("## Use it from Python", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)
    assert namespace["trainer"].global_step == 2
    assert (tmp_path / "outputs" / "my-policy" / "model.safetensors").exists()
    assert (tmp_path / "outputs" / "my-policy" / "tokenizer_config.json").exists()
