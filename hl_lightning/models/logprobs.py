"""The one per-token log-prob function, used for the policy and the reference alike."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, NamedTuple, TypeAlias

import torch
import torch.nn.functional as F
from torch.distributed.tensor import DTensor

from hl_lightning.models.head import autocast_off, linear_selected_logps, selected_logps

if TYPE_CHECKING:
    from peft import PeftModel
    from transformers import PreTrainedModel

    CausalLM: TypeAlias = PreTrainedModel | PeftModel  # a Hugging Face causal LM, with LoRA adapters or not


class TokenLogps(NamedTuple):
    """Per-token log-probs of completion tokens.

    Attributes:
        logps: (B, T-1) fp32; ``logps[b, t] = log p(input_ids[b, t+1] | input_ids[b, :t+1])``, 0 where masked.
        mask: (B, T-1) bool; True on real completion tokens (prompt and padding are False).
    """

    logps: torch.Tensor
    mask: torch.Tensor

    def split(self, parts: Sequence) -> list[TokenLogps]:
        """Undo ``Rows.cat(parts)``: the log-probs of each part, in its own (n_i, T_i - 1) layout."""
        out, start = [], 0
        for part in parts:
            n, width = len(part), part.width - 1
            out.append(TokenLogps(self.logps[start : start + n, :width], self.mask[start : start + n, :width]))
            start += n
        return out

    def detach(self) -> TokenLogps:
        """The same log-probs without gradient."""
        return TokenLogps(self.logps.detach(), self.mask)


def completion_logps(
    model: CausalLM,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    completion_mask: torch.Tensor,
) -> TokenLogps:
    """Log-probs of the completion tokens of a right-padded batch, in fp32.

    The decoder runs once over the whole sequence, but the LM head and the log-softmax run only at the
    positions that predict a completion token (one-token shift), so no (B, T, V) tensor is ever built.
    The selected-token form ``logit[y] - logsumexp(logits)`` is computed from fp32 logits, whatever the
    model's dtype and whatever the autocast (the head runs with autocast off), which keeps the tiny log-ratios of
    a lagged reference above rounding noise. The decoder runs under the caller's autocast, if any.

    Args:
        model: a Hugging Face causal LM (``get_decoder()`` gives the trunk, ``get_output_embeddings()``
            the LM head).
        input_ids: (B, T) token ids.
        attention_mask: (B, T) 1 on real tokens, 0 on padding.
        completion_mask: (B, T) bool, True where ``input_ids`` is a completion token.

    Returns:
        TokenLogps with (B, T-1) fp32 log-probs and the matching bool mask.
    """
    mask = completion_mask[:, 1:] & attention_mask[:, 1:].bool()  # (B, T-1)
    if isinstance(next(model.parameters()), DTensor):  # FSDP2: the root unit must run (see below)
        with fp32_head(model):
            logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1][mask]
        token_logps = selected_logps(logits.float(), input_ids[:, 1:][mask])
    else:
        hidden = model.get_decoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        token_logps = head_logps(model, hidden[:, :-1][mask], input_ids[:, 1:][mask])  # (N,)
    logps = torch.zeros(mask.shape, dtype=torch.float32, device=input_ids.device)
    return TokenLogps(logps.masked_scatter(mask, token_logps), mask)


@contextmanager
def fp32_head(model: CausalLM) -> Iterator[None]:
    """While inside, the model's LM head (a plain ``nn.Linear``) computes fp32 logits from fp32 copies of its input
    and weights, with autocast off, so a full forward under mixed precision gives the logits of
    :func:`head_logps`. Another kind of head runs as it is."""
    head = model.get_output_embeddings()
    if type(head) is not torch.nn.Linear:
        yield
        return

    def forward(hidden: torch.Tensor) -> torch.Tensor:
        with autocast_off(hidden.device):
            bias = None if head.bias is None else head.bias.float()
            return F.linear(hidden.float(), head.weight.float(), bias)

    vars(head)["forward"] = forward  # an instance attribute: ``head(...)`` calls it, hooks included
    try:
        yield
    finally:
        del vars(head)["forward"]


def head_logps(model: CausalLM, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``log p(target)`` from the trunk's hidden states at the N positions that predict a completion token.

    The LM head runs only there, on fp32 copies of the states and weights, in the selected-token form
    ``logit[y] - logsumexp(logits)``: no (B, T, V) tensor, and tiny log-ratios stay above rounding noise. Past
    ``CHUNK_BYTES`` of logits it runs in chunks of tokens (:mod:`hl_lightning.models.head`), so no (N, V) tensor
    is kept. A model sharded with FSDP2 runs its full forward instead (in :func:`completion_logps`), so that its root
    unit gathers the embedding / LM-head shards and averages their gradients as FSDP expects.

    Args:
        model: the causal LM (``get_output_embeddings()`` is its head).
        hidden: (N, H) hidden states.
        targets: (N,) the token each state predicts.

    Returns:
        (N,) fp32 log-probs.
    """
    head = model.get_output_embeddings()
    return linear_selected_logps(hidden, head.weight, head.bias, targets)  # chunked: no (N, V) logits kept
