"""RewardModelReward on a tiny random LlamaForSequenceClassification saved to disk."""

import pytest
import torch
from transformers import LlamaConfig, LlamaForSequenceClassification

from hl_lightning.models.loading import load_tokenizer
from hl_lightning.rewards import RewardModelReward, WeightedSum

PROMPTS = ["What is 2 + 3?", [{"role": "user", "content": "Say hi."}], "What is 12 * 11? Answer briefly."]
COMPLETIONS = ["5", "Hi there, nice to meet you!", "132."]


@pytest.fixture(scope="module")
def rm_dir(tmp_path_factory):
    tokenizer = load_tokenizer("tiny-random")
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
    )
    path = tmp_path_factory.mktemp("rm")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        LlamaForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def reward(rm_dir):
    return RewardModelReward(str(rm_dir), batch_size=2, device="cpu")


def direct(reward, prompt, completion):
    """One unpadded forward pass on the chat-rendered text."""
    enc = reward.tokenizer(reward.render(prompt, completion), add_special_tokens=False, return_tensors="pt")
    with torch.no_grad():
        return reward.model(**enc).logits[0, 0].item()


def test_matches_direct_forward(reward):
    values = reward.score(PROMPTS, COMPLETIONS)
    assert len(values) == 3 and len(set(values)) == 3
    expected = [direct(reward, p, c) for p, c in zip(PROMPTS, COMPLETIONS, strict=True)]
    assert values == pytest.approx(expected, abs=1e-5)
    assert not reward.model.training and not any(p.requires_grad for p in reward.model.parameters())


def test_renders_with_chat_template_or_plain_text(reward, monkeypatch):
    text = reward.render("Q?", "A.")
    assert "<|im_start|>user\nQ?<|im_end|>" in text and "<|im_start|>assistant\nA.<|im_end|>" in text
    monkeypatch.setattr(reward.tokenizer, "chat_template", None)
    assert reward.render("Q?", "A.") == "Q?\n\nA."
    assert len(reward(["Q?", "Q2?"], ["A.", "B."])) == 2


def test_truncation_and_weighted_sum(rm_dir, reward):
    short = RewardModelReward(str(rm_dir), max_length=8, device="cpu")
    assert len(short(["a long prompt " * 20], ["x"])) == 1
    both = WeightedSum([reward, reward], [1.0, 2.0])(PROMPTS, COMPLETIONS)
    assert both == pytest.approx([3 * v for v in reward(PROMPTS, COMPLETIONS)])


def test_not_a_directory(tmp_path):
    with pytest.raises(ValueError, match="not a directory"):
        RewardModelReward("RLHFlow/ArmoRM-Llama3-8B-v0.1")
    with pytest.raises(ValueError, match="not a directory"):
        RewardModelReward(str(tmp_path / "missing"))
