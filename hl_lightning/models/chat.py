"""How a prompt becomes the text a model continues: the tokenizer's chat template, as in training.

Training (``hl_lightning.data.tokenize``), online prompts (``hl_lightning.data.prompts``) and generation
(:mod:`hl_lightning.models.generation`) all render through :func:`render_prompt`, so a sampled completion is scored
after exactly the prompt it was sampled from.
"""

from __future__ import annotations

Messages = list[dict[str, str]]


def chat_messages(prompt: str | Messages) -> Messages:
    """A string as one user turn; a list of ``{role, content}`` messages as it is."""
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt


def render_prompt(tokenizer, messages: Messages) -> str:
    """The prompt text a model continues: the chat template with ``add_generation_prompt=True``, or, for a
    tokenizer without a template, the message contents each followed by a newline."""
    if not getattr(tokenizer, "chat_template", None):
        return "".join(m["content"] + "\n" for m in messages)
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def prompt_ids(tokenizer, messages: Messages) -> list[int]:
    """Token ids of :func:`render_prompt` (no special tokens added: the template has them)."""
    return list(tokenizer(render_prompt(tokenizer, messages), add_special_tokens=False)["input_ids"])
