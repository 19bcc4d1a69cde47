"""A learned reward: any local Hugging Face sequence-classification model."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from hl_lightning.data.rows import as_messages
from hl_lightning.rewards.base import Reward


class RewardModelReward(Reward):
    """Score completions with a local ``AutoModelForSequenceClassification`` directory and its tokenizer.

    Each (prompt, completion) is rendered as ``[user prompt, assistant completion]`` with the tokenizer's
    chat template when it has one (a prompt may also be a message list); otherwise the prompt and the
    completion are joined by a blank line. The reward is the logit ``label`` of the model's output.

    Args:
        path: a local directory saved with ``save_pretrained`` (model and tokenizer). Hub ids are not
            accepted: this code does not download.
        batch_size: texts per forward pass.
        max_length: texts are truncated to this many tokens.
        label: which output logit is the reward (0 for the usual ``num_labels=1`` reward model).
        device: where to run the model, e.g. ``"cpu"`` or ``"cuda"``; default CUDA when available.
    """

    def __init__(
        self, path: str, batch_size: int = 8, max_length: int = 512, label: int = 0, device: str | None = None
    ) -> None:
        if not Path(path).expanduser().is_dir():
            raise ValueError(
                f"RewardModelReward: {path!r} is not a directory. Pass a local directory saved with "
                "save_pretrained (model and tokenizer); Hub ids are not downloaded."
            )
        path = str(Path(path).expanduser())
        self.name = f"reward_model:{Path(path).name}"
        self.batch_size, self.max_length, self.label = batch_size, max_length, label
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForSequenceClassification.from_pretrained(path).to(self.device).eval()
        self.model.requires_grad_(False)
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id

    def render(self, prompt: str | list[dict], completion: str) -> str:
        """The text the reward model scores for one (prompt, completion)."""
        messages = [*as_messages(prompt, "user", "prompt"), {"role": "assistant", "content": completion}]
        if self.tokenizer.chat_template:
            text = self.tokenizer.apply_chat_template(messages, tokenize=False)
            assert isinstance(text, str), "tokenize=False renders the chat as text"
            return text
        return "\n\n".join(message["content"] for message in messages)

    @torch.no_grad()
    def __call__(self, prompts: list[str], completions: list[str], **row_fields) -> list[float]:
        texts = [self.render(p, c) for p, c in zip(prompts, completions, strict=True)]
        special = not self.tokenizer.chat_template  # a chat template already adds BOS and friends
        rewards: list[float] = []
        for i in range(0, len(texts), self.batch_size):
            enc = self.tokenizer(
                texts[i : i + self.batch_size],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                add_special_tokens=special,
                return_tensors="pt",
            ).to(self.device)
            rewards += self.model(**enc).logits[:, self.label].float().tolist()
        return rewards
