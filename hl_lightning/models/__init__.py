"""Model loading, the one log-prob function, and generation.

- Loading (:mod:`hl_lightning.models.loading`): :func:`load_causal_lm` and :func:`load_tokenizer` take a model
  spec (``"smollm2"``, ``"tiny-random"``, a ``save_pretrained`` directory or a Hub id).
- Log-probs (:mod:`hl_lightning.models.logprobs`): :func:`completion_logps`, per completion token, for the policy
  and the reference alike.
- Generation (:mod:`hl_lightning.models.generation`): :func:`generate`, batched sampling from chat prompts,
  through a rollout engine (:mod:`hl_lightning.models.engines`: :class:`KVCacheEngine`, the default, or
  :class:`TransformersGenerateEngine`, :mod:`hl_lightning.models.hf_engine`).
"""

from hl_lightning.models.engines import Completions, KVCacheEngine, RolloutEngine, SamplingConfig
from hl_lightning.models.generation import Generations, generate
from hl_lightning.models.hf_engine import TransformersGenerateEngine
from hl_lightning.models.lean import make_lean
from hl_lightning.models.loading import (
    EMBEDDED,
    TINY_RANDOM,
    ModelLoadError,
    cache_dir,
    load_causal_lm,
    load_tokenizer,
    resolve_pretrained,
    smollm2_model_dir,
    smollm2_tokenizer_dir,
    tiny_random_llama,
    torch_dtype,
)
from hl_lightning.models.logprobs import TokenLogps, completion_logps

__all__ = [
    "EMBEDDED",
    "TINY_RANDOM",
    "Completions",
    "Generations",
    "KVCacheEngine",
    "ModelLoadError",
    "RolloutEngine",
    "SamplingConfig",
    "TokenLogps",
    "TransformersGenerateEngine",
    "cache_dir",
    "completion_logps",
    "generate",
    "load_causal_lm",
    "load_tokenizer",
    "make_lean",
    "resolve_pretrained",
    "smollm2_model_dir",
    "smollm2_tokenizer_dir",
    "tiny_random_llama",
    "torch_dtype",
]
