"""The two rollout engines held to each other on the tiny model: equal greedy ids, equal seeded samples at top-p 1,
the top-p first-token distribution of each against the policy's softmax, and ``refresh`` following the policy."""

import copy
import math

import pytest
import torch

from hl_lightning.models.chat import chat_messages, render_prompt
from hl_lightning.models.engines import Completions, KVCacheEngine, SamplingConfig
from hl_lightning.models.generation import generate
from hl_lightning.models.hf_engine import TransformersGenerateEngine

ENGINES = [KVCacheEngine, TransformersGenerateEngine]
TEXTS = ["Hi", "What is 12 + 7? Think about it step by step, then answer with one number please.", "Name a colour."]


@pytest.fixture(scope="module")
def prompt_ids(tokenizer) -> list[list[int]]:
    """Three chat prompts of different lengths, as the engines get them (template applied, no padding)."""
    rendered = [render_prompt(tokenizer, chat_messages(text)) for text in TEXTS]
    ids = tokenizer(rendered, add_special_tokens=False)["input_ids"]
    assert len({len(row) for row in ids}) == 3
    return ids


@pytest.fixture
def sharp_model(lively_model):
    """The lively model with its final norm scaled 20x: peaked next-token distributions (the top token holds about
    0.1 to 0.5 of the mass, the top 50 tokens about 0.6), so temperature, top-p and top-k all change the samples."""
    with torch.no_grad():
        lively_model.model.norm.weight.mul_(20.0)
    return lively_model


def sample(engine_cls, model, prompt_ids, eos: set[int], seed: int | None = None, **settings) -> Completions:
    engine = engine_cls()
    engine.refresh(model)
    return engine.sample(prompt_ids, SamplingConfig(**settings), eos=eos, seed=seed)


GREEDY = dict(num_generations=2, max_new_tokens=8, temperature=0.0, top_p=1.0, batch_size=2)  # 2 batches, padded


def test_greedy_ids_are_equal_and_end_at_the_same_end_id(lively_model, prompt_ids, tokenizer):
    """Both engines, greedy, 2 batches of prompts of different lengths; then with the 3rd token of prompt 0 declared
    an end id: both cut prompt 0's completions there (finished) and run the others to max_new_tokens."""
    eos = {tokenizer.eos_token_id}
    kv, hf = (sample(cls, lively_model, prompt_ids, eos, **GREEDY) for cls in ENGINES)
    assert kv == hf and kv.truncated == [True] * 6
    assert len({tuple(ids) for ids in kv.ids}) == 3 and kv.ids[0] == kv.ids[1]  # greedy: G equal copies
    stop = kv.ids[0][2]
    assert all(stop not in ids for ids in kv.ids[2:])
    kv_cut, hf_cut = (sample(cls, lively_model, prompt_ids, eos | {stop}, **GREEDY) for cls in ENGINES)
    assert kv_cut == hf_cut
    assert kv_cut.ids == [kv.ids[0][: kv.ids[0].index(stop) + 1]] * 2 + kv.ids[2:]
    assert kv_cut.truncated == [False, False, True, True, True, True]


def test_the_checkpoints_generation_config_does_not_reach_transformers_generate(lively_model, prompt_ids, tokenizer):
    """A repetition penalty and a banned word in the model's generation config change
    ``model.generate``'s greedy ids when left in force; the engine keeps our settings only, as the KV engine does."""
    eos = {tokenizer.eos_token_id}
    plain = sample(KVCacheEngine, lively_model, prompt_ids, eos, **GREEDY)
    config = lively_model.generation_config
    config.repetition_penalty, config.bad_words_ids = 50.0, [[plain.ids[0][0]]]
    assert sample(KVCacheEngine, lively_model, prompt_ids, eos, **GREEDY) == plain
    assert sample(TransformersGenerateEngine, lively_model, prompt_ids, eos, **GREEDY) == plain
    enc = {"input_ids": torch.tensor([prompt_ids[0]]), "attention_mask": torch.ones(1, len(prompt_ids[0]))}
    left_in_force = lively_model.generate(**enc, max_new_tokens=8, do_sample=False, pad_token_id=0)
    assert left_in_force[0, len(prompt_ids[0]) :].tolist() != plain.ids[0]  # the check above is not vacuous


def test_seeded_samples_are_equal_at_top_p_1(sharp_model, prompt_ids, tokenizer):
    """At top-p 1 both engines draw each token with one ``torch.multinomial`` over the same rows (no row ends early
    here), so one seed gives the same ids: the temperature and the absence of top-k are the same in both."""
    eos, settings = {tokenizer.eos_token_id}, dict(num_generations=3, max_new_tokens=6, top_p=1.0, batch_size=2)
    kv, hf = (sample(cls, sharp_model, prompt_ids, eos, seed=7, temperature=0.7, **settings) for cls in ENGINES)
    assert kv == hf and kv.truncated == [True] * 9
    assert len({tuple(ids) for ids in kv.ids}) == 9  # nine different samples
    hotter = sample(KVCacheEngine, sharp_model, prompt_ids, eos, seed=7, temperature=1.0, **settings)
    assert hotter.ids != kv.ids  # the temperature matters at this seed, so the equality above tests it


def nucleus_distribution(model, ids: list[int], temperature: float, top_p: float) -> dict[int, float]:
    """The next-token distribution of ``softmax(logits / T)`` restricted to the top-p set (a token is kept while the
    mass of the more likely tokens is < top_p), renormalised: written out here, independent of the engines."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0, -1].double()
    probs, order = torch.softmax(logits / temperature, -1).sort(descending=True)
    kept = (probs.cumsum(0) - probs) < top_p
    mass = probs[kept].sum().item()
    return {int(t): p.item() / mass for t, p in zip(order[kept], probs[kept], strict=True)}


@pytest.mark.parametrize("engine_cls", ENGINES)
def test_top_p_first_tokens_follow_the_policys_nucleus(engine_cls, sharp_model, prompt_ids, tokenizer):
    """1000 first tokens of prompt 1 at T 0.7, top-p 0.8: none outside the nucleus, and each nucleus token's
    frequency within 5 binomial standard deviations of its renormalised probability (sqrt(p (1 - p) / n))."""
    n, per_prompt, temperature, top_p = 1000, 100, 0.7, 0.8
    expected = nucleus_distribution(sharp_model, prompt_ids[1], temperature, top_p)
    assert 3 <= len(expected) <= 40 and max(expected.values()) < 0.9  # a real choice among several tokens
    out = sample(
        engine_cls,
        sharp_model,
        [prompt_ids[1]] * (n // per_prompt),
        {tokenizer.eos_token_id},
        seed=0,
        num_generations=per_prompt,
        max_new_tokens=1,
        temperature=temperature,
        top_p=top_p,
        batch_size=2,
    )
    firsts = [ids[0] for ids in out.ids]
    assert len(firsts) == n and set(firsts) <= set(expected)
    for token, p in expected.items():
        assert abs(firsts.count(token) / n - p) <= 5 * math.sqrt(p * (1 - p) / n) + 1e-9, token


@pytest.mark.parametrize("engine_cls", ENGINES)
def test_refresh_follows_a_changed_policy(engine_cls, lively_model, prompt_ids, tokenizer):
    """An engine refreshed with another policy (changed weights) decodes that policy's greedy ids."""
    changed = copy.deepcopy(lively_model)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in changed.model.layers.parameters():
            param.add_(torch.randn(param.shape, generator=gen) * 0.3)
    engine, settings, eos = engine_cls(), SamplingConfig(**GREEDY), {tokenizer.eos_token_id}
    engine.refresh(lively_model)
    before = engine.sample(prompt_ids, settings, eos=eos).ids
    engine.refresh(changed)
    after = engine.sample(prompt_ids, settings, eos=eos).ids
    new_greedy = generate(changed, tokenizer, TEXTS, max_new_tokens=8, num_return_sequences=2).completion_ids
    assert after == new_greedy and after != before
    assert before == generate(lively_model, tokenizer, TEXTS, max_new_tokens=8, num_return_sequences=2).completion_ids


def test_sample_before_refresh_is_one_clear_error(prompt_ids):
    with pytest.raises(RuntimeError, match=r"^TransformersGenerateEngine.sample before refresh\(policy\)"):
        TransformersGenerateEngine().sample(prompt_ids, SamplingConfig(), eos={2})
