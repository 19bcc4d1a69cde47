"""Tokenisation per docs/CONTRACTS.md: chat template, completion mask, truncation, padding."""

from __future__ import annotations

import copy

import pytest
import torch

from hl_lightning.data.rows import DataError
from hl_lightning.data.tokenize import encode, pad_batch, render

PROMPT = [{"role": "user", "content": "What is 2 + 2?"}]
ANSWER = [{"role": "assistant", "content": "2 + 2 = 4."}]
LONG = " ".join(f"w{i}" for i in range(200))


def _ids(tokenizer, text):
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_completion_mask_covers_the_rendered_completion(tokenizer):
    out = encode(tokenizer, PROMPT, ANSWER, max_length=256, max_prompt_length=128)
    prompt_text, completion_text = render(tokenizer, PROMPT, ANSWER)
    assert completion_text == "2 + 2 = 4.<|im_end|>\n" and prompt_text.endswith("<|im_start|>assistant\n")
    ids, mask = torch.tensor(out["input_ids"]), torch.tensor(out["completion_mask"])
    assert tokenizer.decode(ids[mask]) == completion_text and tokenizer.decode(ids[~mask]) == prompt_text
    assert not out["truncated"] and mask.sum() > 0 and not mask[: (~mask).sum()].any()


def test_prompt_is_cut_from_the_left(tokenizer):
    prompt = [{"role": "user", "content": LONG}]
    out = encode(tokenizer, prompt, ANSWER, max_length=64, max_prompt_length=16)
    full_prompt = _ids(tokenizer, render(tokenizer, prompt, ANSWER)[0])
    n_prompt = out["completion_mask"].index(True)
    assert out["truncated"] and n_prompt == 16 and out["input_ids"][:16] == full_prompt[-16:]
    assert len(out["input_ids"]) <= 64


def test_completion_is_cut_from_the_right(tokenizer):
    completion = [{"role": "assistant", "content": LONG}]
    out = encode(tokenizer, PROMPT, completion, max_length=60, max_prompt_length=50)
    prompt_text, completion_text = render(tokenizer, PROMPT, completion)
    n_prompt = len(_ids(tokenizer, prompt_text))
    assert len(out["input_ids"]) == 60 and out["truncated"]
    assert out["input_ids"][n_prompt:] == _ids(tokenizer, completion_text)[: 60 - n_prompt]
    assert sum(out["completion_mask"]) == 60 - n_prompt


def test_over_long_rows_without_truncation_are_errors(tokenizer):
    prompt = [{"role": "user", "content": LONG}]
    with pytest.raises(DataError, match="raise max_length / max_prompt_length or set truncate=true") as err:
        encode(tokenizer, prompt, ANSWER, max_length=64, max_prompt_length=16, truncate=False)
    assert err.value.reason == "too long"
    with pytest.raises(DataError, match=r"leaves no room for a completion within max_length=16"):
        encode(tokenizer, prompt, ANSWER, max_length=16, max_prompt_length=16)


def test_tokenizer_without_chat_template(tokenizer):
    plain = copy.deepcopy(tokenizer)
    plain.chat_template = None
    assert render(plain, PROMPT, ANSWER) == ("What is 2 + 2?\n", "2 + 2 = 4." + plain.eos_token)
    out = encode(plain, PROMPT, ANSWER, max_length=64, max_prompt_length=32)
    ids, mask = torch.tensor(out["input_ids"]), torch.tensor(out["completion_mask"])
    assert plain.decode(ids[mask]) == "2 + 2 = 4.<|im_end|>"


def test_template_without_prefix_property_is_an_error(tokenizer):
    odd = copy.deepcopy(tokenizer)
    odd.chat_template = "{% for m in messages %}{{ m.content }}{% endfor %}{{ '>' if add_generation_prompt }}"
    with pytest.raises(DataError, match="does not render the prompt"):
        encode(odd, PROMPT, ANSWER, max_length=64, max_prompt_length=32)


def test_pad_batch_right_pads():
    seqs = [
        {"input_ids": [5, 6, 7], "completion_mask": [False, True, True]},
        {"input_ids": [8], "completion_mask": [True]},
    ]
    batch = pad_batch(seqs, pad_id=2)
    assert batch.input_ids.tolist() == [[5, 6, 7], [8, 2, 2]] and batch.input_ids.dtype == torch.long
    assert batch.attention_mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch.attention_mask.dtype == torch.long
    assert batch.completion_mask.tolist() == [[False, True, True], [True, False, False]]
    assert batch.completion_mask.dtype == torch.bool
