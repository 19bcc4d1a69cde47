"""Early, explicit refusals of a module's options and of what it is trained with (at construction or setup)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from hl_lightning.data.base import BaseDataModule

if TYPE_CHECKING:
    from hl_lightning.models.logprobs import CausalLM


def check_export_dir(export_dir: str | None) -> None:
    """Refuse an ``export_dir`` that exists and holds something other than an earlier ``save_pretrained`` export
    (which is replaced), so a typo never writes a model over unrelated files."""
    if export_dir is None:
        return
    path = Path(export_dir).expanduser()
    if path.exists() and (not path.is_dir() or (any(path.iterdir()) and not (path / "config.json").exists())):
        raise ValueError(
            f"export_dir={export_dir!r} exists and is not an earlier model export (no config.json): "
            "choose a new or empty directory, e.g. export_dir: outputs/<run>/model."
        )


def check_dtype(model: torch.nn.Module, dtype: str | None) -> None:
    """A weights dtype the device cannot compute in fails here, naming both, not in the first forward."""
    param = next(model.parameters())
    try:
        ones = torch.ones(2, 2, dtype=param.dtype, device=param.device)
        ones @ ones
    except RuntimeError as err:
        raise ValueError(
            f"dtype={dtype!r} cannot run on {param.device} ({err}); use dtype=float32 (or bfloat16 "
            "where the device supports it)."
        ) from err


def check_tokenizer(model: CausalLM, tokenizer, model_spec: str | None) -> None:
    """A tokenizer with more tokens than the model's embedding would index out of range: refuse, naming both."""
    embedding = model.get_input_embeddings()
    assert isinstance(embedding, torch.nn.Embedding), "a causal LM's input embedding"
    vocab = embedding.num_embeddings
    if tokenizer is not None and len(tokenizer) > vocab:
        name = getattr(tokenizer, "name_or_path", "?")
        raise ValueError(
            f"The data's tokenizer ({name}, {len(tokenizer)} tokens) does not fit the model "
            f"({model_spec or type(model).__name__}, embedding of {vocab}): token ids would be out of range. Give "
            "the data module the model's tokenizer (data tokenizer: null follows the model)."
        )


def check_family(module, datamodule) -> None:
    """An hl_lightning data module must be the one of the module's spec (e.g. not pairs for KTO)."""
    spec = module.spec
    if isinstance(datamodule, BaseDataModule) and not isinstance(datamodule, spec.data_module):
        raise TypeError(
            f"{type(module).__name__} trains on {spec.name} from {spec.data_module.__name__}, but the data module is "
            f"{type(datamodule).__name__}; set data.class_path: hl_lightning.data.{spec.data_module.__name__} (or "
            "use the model that fits the data)."
        )
