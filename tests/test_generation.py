"""Batched chat generation: determinism, left padding, ordering, truncation, model and RNG state."""

import copy

import pytest
import torch

from hl_lightning.models.generation import generate
from hl_lightning.models.loading import load_causal_lm, load_tokenizer

SHORT = "Hi"
LONG = "What is 12 + 7? Think about it step by step, then answer with one number please."
PROMPTS = [SHORT, [{"role": "user", "content": LONG}]]


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("tiny-random")


@pytest.fixture(scope="module")
def model():
    """The tiny random Llama with larger block weights, so greedy completions depend on the context.

    (With its small default init the tied-embedding model just repeats the last prompt token, which would
    make the padding and ordering tests pass trivially.)
    """
    model = copy.deepcopy(load_causal_lm("tiny-random"))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in model.model.layers.parameters():
            if param.dim() == 2:
                param.normal_(0.0, 0.3, generator=gen)
    return model


def test_greedy_is_deterministic_and_context_dependent(model, tokenizer):
    first = generate(model, tokenizer, PROMPTS, max_new_tokens=6)
    second = generate(model, tokenizer, PROMPTS, max_new_tokens=6, batch_size=1)
    assert first.completion_ids == second.completion_ids
    assert first.completion_ids[0] != first.completion_ids[1]
    assert first.texts == tokenizer.batch_decode(first.completion_ids, skip_special_tokens=True)
    assert first.num_tokens == sum(map(len, first.completion_ids)) and first.tokens_per_s > 0


def test_seeded_sampling_is_reproducible(model, tokenizer):
    kwargs = dict(max_new_tokens=6, temperature=1.0, top_p=0.95, num_return_sequences=2)
    a = generate(model, tokenizer, PROMPTS, seed=1, **kwargs)
    b = generate(model, tokenizer, PROMPTS, seed=1, **kwargs)
    c = generate(model, tokenizer, PROMPTS, seed=2, **kwargs)
    assert a.completion_ids == b.completion_ids != c.completion_ids
    assert len(a.texts) == len(a.completion_ids) == len(a.truncated) == 4


def test_left_padding_matches_unbatched(model, tokenizer):
    alone = generate(model, tokenizer, [SHORT], max_new_tokens=8)
    batched = generate(model, tokenizer, [SHORT, LONG], max_new_tokens=8)
    assert batched.completion_ids[0] == alone.completion_ids[0]
    assert tokenizer.padding_side == "right"  # the caller's tokenizer is left as it was


def test_prompt_major_order(model, tokenizer):
    greedy = generate(model, tokenizer, PROMPTS, max_new_tokens=4).completion_ids
    for temperature in (0.0, 1e-4):  # greedy repeats; near-zero temperature samples the greedy path
        out = generate(
            model,
            tokenizer,
            PROMPTS,
            max_new_tokens=4,
            temperature=temperature,
            num_return_sequences=3,
            seed=0,
        )
        assert out.completion_ids == [greedy[0]] * 3 + [greedy[1]] * 3


def test_truncation_and_eos_cut(model, tokenizer, monkeypatch):
    full = generate(model, tokenizer, PROMPTS, max_new_tokens=6)
    assert full.truncated == [True, True] and all(len(ids) == 6 for ids in full.completion_ids)
    stop = full.completion_ids[0][2]  # declare the third token of prompt 0 an end-of-sequence token
    assert stop not in full.completion_ids[1]
    cut_at = full.completion_ids[0].index(stop) + 1
    monkeypatch.setattr(model.generation_config, "eos_token_id", [tokenizer.eos_token_id, stop])
    out = generate(model, tokenizer, PROMPTS, max_new_tokens=6)
    assert out.completion_ids == [full.completion_ids[0][:cut_at], full.completion_ids[1]]
    assert out.truncated == [False, True]


def test_eval_mode_during_generation_and_training_mode_restored(model, tokenizer):
    seen = []
    handle = model.register_forward_pre_hook(lambda module, args: seen.append(module.training))
    try:
        for training in (True, False):
            model.train(training)
            generate(model, tokenizer, [SHORT], max_new_tokens=2)
            assert model.training is training
    finally:
        handle.remove()
        model.eval()
    assert seen and not any(seen)


def test_seeded_generation_leaves_global_rng_untouched(model, tokenizer):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    generate(model, tokenizer, PROMPTS, max_new_tokens=3, temperature=1.0, seed=7)
    assert torch.equal(torch.rand(3), expected)


def test_rejects_bad_settings(model, tokenizer):
    with pytest.raises(ValueError, match="top_p"):
        generate(model, tokenizer, PROMPTS, temperature=1.0, top_p=0.0)


def _encoded(tokenizer, prompts):
    from hl_lightning.data.rows import as_messages
    from hl_lightning.models.chat import render_prompt

    rendered = [render_prompt(tokenizer, as_messages(p, "user", "prompt")) for p in prompts]
    return tokenizer(rendered, padding=True, padding_side="left", add_special_tokens=False, return_tensors="pt")


def test_greedy_decode_equals_transformers_generate(model, tokenizer):
    """Our KV-cache loop and ``model.generate`` (greedy, left padding) produce the same ids, row by row."""
    from hl_lightning.models.decode import decode

    enc = _encoded(tokenizer, PROMPTS)
    ours = decode(
        model.eval(),
        enc["input_ids"],
        enc["attention_mask"],
        copies=1,
        max_new_tokens=8,
        temperature=0.0,
        top_p=1.0,
        eos={tokenizer.eos_token_id},
    )
    theirs = model.generate(
        **enc,
        max_new_tokens=8,
        do_sample=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )[:, enc["input_ids"].shape[1] :].tolist()
    assert ours == theirs and len(set(map(tuple, ours))) == 2


def test_one_prefill_per_prompt_and_finished_rows_leave_the_batch(model, tokenizer, monkeypatch):
    """3 copies of 2 prompts: the prefill runs 2 rows (not 6), each decode step the rows still going. Declaring
    the 2nd greedy token of prompt 0 an end token ends its 3 copies there: later steps run 3 rows."""
    from hl_lightning.models.decode import decode

    enc = _encoded(tokenizer, PROMPTS)
    kwargs = dict(copies=3, max_new_tokens=5, temperature=0.0, top_p=1.0)
    full = decode(model, enc["input_ids"], enc["attention_mask"], eos={tokenizer.eos_token_id}, **kwargs)
    stop = full[0][1]
    assert stop not in full[3] and full[:3] == [full[0]] * 3
    batches, forward = [], model.forward
    monkeypatch.setattr(model, "forward", lambda **kw: batches.append(kw["input_ids"].shape) or forward(**kw))
    out = decode(model, enc["input_ids"], enc["attention_mask"], eos={tokenizer.eos_token_id, stop}, **kwargs)
    assert out == [full[0][:2]] * 3 + full[3:]
    assert batches == [enc["input_ids"].shape, (6, 1), (3, 1), (3, 1), (3, 1)]


def test_pick_follows_temperature_and_top_p_by_hand():
    """probs 0.5, 0.3, 0.2 (logits log p): top_p 0.6 keeps tokens 0 and 1 (mass before them 0 and 0.5 < 0.6;
    before token 2 it is 0.8), renormalised to 5/8 and 3/8; top_p 1 keeps all three; T -> 0 is argmax."""
    from hl_lightning.models.decode import pick

    logits = torch.tensor([[0.5, 0.3, 0.2]]).log().expand(40000, 3)
    torch.manual_seed(0)
    counts = torch.bincount(pick(logits, 1.0, 0.6), minlength=3) / 40000
    assert counts[2] == 0 and abs(counts[0] - 5 / 8) < 0.01 and abs(counts[1] - 3 / 8) < 0.01
    counts = torch.bincount(pick(logits, 1.0, 1.0), minlength=3) / 40000
    assert torch.allclose(counts, torch.tensor([0.5, 0.3, 0.2]), atol=0.01)
    hot = torch.bincount(pick(logits, 2.0, 1.0), minlength=3) / 40000  # T=2: p ∝ sqrt(p), 0.417 0.323 0.264 ...
    expected = torch.tensor([0.5, 0.3, 0.2]).sqrt() / torch.tensor([0.5, 0.3, 0.2]).sqrt().sum()
    assert torch.allclose(hot, expected, atol=0.01)
    assert pick(logits[:2], 0.0, 1.0).tolist() == [0, 0]


def _dense(kept: torch.Tensor, ids: torch.Tensor, vocab: int) -> torch.Tensor:
    return torch.zeros(len(kept), vocab).scatter(-1, ids, kept)


def test_nucleus_by_hand_and_its_fallback_to_the_full_sort():
    """probs 0.5, 0.3, 0.2 with 2 candidates: top_p 0.6 -> the candidates hold 0.8 >= 0.6, so only they are
    returned, kept 0.5 and 0.3 (mass before them 0 and 0.5); top_p 0.9 -> 0.8 < 0.9, the full sort runs and
    token 2 (mass before it 0.8 < 0.9) is kept too."""
    from hl_lightning.models.decode import nucleus

    probs = torch.tensor([[0.2, 0.5, 0.3]])
    kept, ids = nucleus(probs, 0.6, candidates=2)
    assert ids.tolist() == [[1, 2]] and kept.tolist() == [[0.5, 0.30000001192092896]]
    kept, ids = nucleus(probs, 0.9, candidates=2)
    assert ids.tolist() == [[1, 2, 0]] and torch.equal(kept, torch.tensor([[0.5, 0.3, 0.2]]))


def test_nucleus_from_candidates_is_the_full_sorts_set():
    """The candidate shortcut returns exactly the distribution the full sort gives: on peaked rows (candidates
    used), on flat rows (full sort) and on a batch mixing both (one flat row sends the whole batch to the sort)."""
    from hl_lightning.models.decode import nucleus

    torch.manual_seed(0)
    peaked = torch.softmax(torch.randn(16, 1000) * 4, -1)
    flat = torch.softmax(torch.randn(16, 1000) * 0.1, -1)
    for probs, width in [(peaked, 64), (flat, 1000), (torch.cat([peaked, flat[:1]]), 1000)]:
        kept, ids = nucleus(probs, 0.9, candidates=64)
        full = nucleus(probs, 0.9, candidates=1000)
        assert ids.shape[-1] == width
        assert torch.equal(_dense(kept, ids, 1000), _dense(*full, 1000))
        assert bool(((_dense(kept, ids, 1000) > 0).sum(-1) >= 1).all())
