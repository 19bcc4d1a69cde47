"""A rollout engine on Hugging Face ``model.generate``: the reference implementation our KV-cache decode is held to,
and the starting point for engines built on other generators."""

from __future__ import annotations

import torch
from transformers import GenerationConfig

from hl_lightning.models.decode import synced
from hl_lightning.models.engines import InProcessEngine, SamplingConfig

# Everything else a checkpoint's generation config may set that changes which token comes next or when a completion
# stops, at its neutral value (model.generate fills what a call leaves unset from the model's own config). The
# warpers act only when sampling (naming them for greedy decoding makes transformers warn).
WARPERS = dict(top_k=0, min_p=None, top_h=None, typical_p=1.0, epsilon_cutoff=0.0, eta_cutoff=0.0)
PROCESSORS = dict(
    repetition_penalty=1.0,
    no_repeat_ngram_size=0,
    bad_words_ids=None,
    sequence_bias=None,
    suppress_tokens=None,
    begin_suppress_tokens=None,
    forced_bos_token_id=None,
    forced_eos_token_id=None,
    exponential_decay_length_penalty=None,
    guidance_scale=None,
    min_length=0,
    min_new_tokens=None,
    max_time=None,
    stop_strings=None,
    renormalize_logits=False,
    remove_invalid_values=False,
    watermarking_config=None,
    num_beams=1,
)


def settings(sampling: SamplingConfig) -> dict:
    """``model.generate``'s sampling keywords for ``sampling``, every other knob neutral (those this version of
    transformers knows)."""
    sample = sampling.temperature > 0
    knobs = {**PROCESSORS, **(dict(WARPERS, temperature=sampling.temperature, top_p=sampling.top_p) if sample else {})}
    known = GenerationConfig()
    return {key: value for key, value in knobs.items() if hasattr(known, key)} | dict(do_sample=sample)


def cut(row: list[int], stops: set[int]) -> list[int]:
    """``row`` up to and including its first id in ``stops`` (all of it without one)."""
    for i, token in enumerate(row):
        if token in stops:
            return row[: i + 1]
    return row


class TransformersGenerateEngine(InProcessEngine):
    """Samples with Hugging Face ``model.generate`` on the policy module: the same settings and stop rules as the
    default :class:`~hl_lightning.models.engines.KVCacheEngine` (temperature, top-p, no top-k, greedy at
    temperature 0, the end ids, ``max_new_tokens``, left padding), and nothing else from the checkpoint's
    generation config (no repetition penalty, top-k, min-p, ... even if it names them). Slower: every completion
    re-runs its prompt's prefill and finished rows keep decoding padding until the batch ends. Under FSDP the
    ranks' forwards pair up (``synced_gpus``).

    In YAML: ``data.init_args.engine: {class_path: hl_lightning.online.TransformersGenerateEngine}``.
    """

    def decode(
        self,
        model: torch.nn.Module,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        copies: int,
        sampling: SamplingConfig,
        stops: set[int],
    ) -> list[list[int]]:
        """One batch through ``model.generate``, its completions cut after their first end id."""
        out = model.generate(  # type: ignore[operator]
            input_ids=input_ids,
            attention_mask=attention_mask,
            max_new_tokens=sampling.max_new_tokens,
            num_return_sequences=copies,
            eos_token_id=sorted(stops),
            pad_token_id=min(stops),
            synced_gpus=synced(model),
            **settings(sampling),
        )
        return [cut(row, stops) for row in out[:, input_ids.shape[1] :].tolist()]
