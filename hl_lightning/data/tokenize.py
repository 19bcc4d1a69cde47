"""Turn (prompt, completion) messages into token ids with a completion mask, and pad batches.

The prompt is rendered with the tokenizer's chat template and ``add_generation_prompt=True``; the
completion is the rest of the rendered full conversation (so it ends with the end-of-turn token). Both
texts are tokenised with ``add_special_tokens=False``. The prompt is cut from the left to
``max_prompt_length`` tokens, then the completion from the right so that the total is <= ``max_length``.
A tokenizer without a chat template gets the message contents joined by newlines, and its EOS token
after the completion.
"""

from __future__ import annotations

import torch

from hl_lightning.data.batches import Rows
from hl_lightning.data.rows import DataError, Messages
from hl_lightning.models.chat import render_prompt


def render(tokenizer, prompt: Messages, completion: Messages) -> tuple[str, str]:
    """Return ``(prompt_text, completion_text)``; their concatenation is the rendered conversation."""
    prompt_text = render_prompt(tokenizer, prompt)
    if not getattr(tokenizer, "chat_template", None):
        return prompt_text, "\n".join(m["content"] for m in completion) + (tokenizer.eos_token or "")
    full_text = tokenizer.apply_chat_template(prompt + completion, tokenize=False)
    if not full_text.startswith(prompt_text):
        raise DataError(
            "the tokenizer's chat template does not render the prompt (with add_generation_prompt=True) as "
            "the start of the full conversation, so the completion cannot be located; use a tokenizer whose "
            "template has this prefix property",
            "chat template breaks the prompt prefix",
        )
    return prompt_text, full_text[len(prompt_text) :]


def _ids(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def encode_parts(
    tokenizer,
    prompt: Messages,
    completion: Messages,
    max_length: int,
    max_prompt_length: int,
    truncate: bool = True,
) -> tuple[list[int], list[int], bool]:
    """Return ``(prompt_ids, completion_ids, truncated)`` cut to the limits (see the module docstring)."""
    prompt_text, completion_text = render(tokenizer, prompt, completion)
    prompt_ids, completion_ids = _ids(tokenizer, prompt_text), _ids(tokenizer, completion_text)
    if not completion_ids:
        raise DataError("the completion renders to no tokens", "empty completion")
    too_long = len(prompt_ids) > max_prompt_length or len(prompt_ids) + len(completion_ids) > max_length
    if too_long and not truncate:
        raise DataError(
            f"the prompt has {len(prompt_ids)} tokens (max_prompt_length={max_prompt_length}) and prompt + "
            f"completion {len(prompt_ids) + len(completion_ids)} (max_length={max_length}); raise max_length "
            "/ max_prompt_length or set truncate=true",
            "too long",
        )
    prompt_ids = prompt_ids[max(len(prompt_ids) - max_prompt_length, 0) :]
    room = max_length - len(prompt_ids)
    if room < 1:
        raise DataError(
            f"the prompt ({len(prompt_ids)} tokens) leaves no room for a completion within "
            f"max_length={max_length}; raise max_length or lower max_prompt_length",
            "no room",
        )
    return prompt_ids, completion_ids[:room], too_long


def join(prompt_ids: list[int], completion_ids: list[int], max_length: int | None = None) -> dict:
    """``input_ids`` and ``completion_mask`` of prompt + completion (the completion cut to ``max_length``)."""
    if max_length is not None:
        completion_ids = completion_ids[: max(max_length - len(prompt_ids), 0)]
    return {
        "input_ids": prompt_ids + completion_ids,
        "completion_mask": [False] * len(prompt_ids) + [True] * len(completion_ids),
    }


def encode(
    tokenizer,
    prompt_messages: Messages,
    completion_messages: Messages,
    max_length: int,
    max_prompt_length: int,
    truncate: bool = True,
) -> dict:
    """Tokenise one prompt + completion.

    Args:
        tokenizer: a Hugging Face tokenizer.
        prompt_messages: the prompt as ``{role, content}`` messages.
        completion_messages: the completion as ``{role, content}`` messages.
        max_length: most tokens in prompt + completion.
        max_prompt_length: most prompt tokens (kept from the right).
        truncate: cut over-long rows; when False they raise :class:`DataError`.

    Returns:
        ``{"input_ids": list[int], "completion_mask": list[bool], "truncated": bool}``.
    """
    prompt_ids, completion_ids, truncated = encode_parts(
        tokenizer, prompt_messages, completion_messages, max_length, max_prompt_length, truncate
    )
    return {**join(prompt_ids, completion_ids), "truncated": truncated}


def pad_batch(
    sequences: list[dict], pad_id: int, keys: list[int] | None = None, shared: list[list[int]] | None = None
) -> Rows:
    """Right-pad ``{"input_ids", "completion_mask"}`` dicts into :class:`~hl_lightning.data.batches.Rows`
    (N, T): ``input_ids`` / ``attention_mask`` long, ``completion_mask`` bool, optional row ``keys``."""
    width = max(len(s["input_ids"]) for s in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    completion_mask = torch.zeros((len(sequences), width), dtype=torch.bool)
    for row, seq in enumerate(sequences):
        n = len(seq["input_ids"])
        input_ids[row, :n] = torch.tensor(seq["input_ids"], dtype=torch.long)
        attention_mask[row, :n] = 1
        completion_mask[row, :n] = torch.tensor(seq["completion_mask"], dtype=torch.bool)
    key_tensor = None if keys is None else torch.tensor(keys, dtype=torch.long)
    return Rows(input_ids, attention_mask, completion_mask, key_tensor, shared or [])
