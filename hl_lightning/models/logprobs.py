"""The one per-token log-prob function, used for the policy and the reference alike."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch.distributed.tensor import DTensor


class TokenLogps(NamedTuple):
    """Per-token log-probs of completion tokens.

    Attributes:
        logps: (B, T-1) fp32; ``logps[b, t] = log p(input_ids[b, t+1] | input_ids[b, :t+1])``, 0 where masked.
        mask: (B, T-1) bool; True on real completion tokens (prompt and padding are False).
    """

    logps: torch.Tensor
    mask: torch.Tensor


def completion_logps(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    completion_mask: torch.Tensor,
) -> TokenLogps:
    """Log-probs of the completion tokens of a right-padded batch, in fp32.

    The decoder runs once over the whole sequence, but the LM head and the log-softmax run only at the
    positions that predict a completion token (one-token shift), so no (B, T, V) tensor is ever built.
    The selected-token form ``logit[y] - logsumexp(logits)`` is computed from fp32 logits, whatever the
    model's dtype, which keeps the tiny log-ratios of a lagged reference above rounding noise.

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
    logits = _completion_logits(model, input_ids, attention_mask, mask)  # (N, V) fp32
    targets = input_ids[:, 1:][mask]  # (N,)
    token_logps = logits.gather(-1, targets[:, None]).squeeze(-1) - logits.logsumexp(-1)  # (N,)
    logps = torch.zeros(mask.shape, dtype=torch.float32, device=input_ids.device)
    return TokenLogps(logps.masked_scatter(mask, token_logps), mask)


def _completion_logits(model, input_ids, attention_mask, mask) -> torch.Tensor:
    """fp32 logits at the positions that predict a completion token, (N, V).

    The trunk runs once; the LM head only at the N selected positions. A model sharded with FSDP2 runs its
    full forward instead, so that its root unit gathers the embedding / LM-head shards (and averages their
    gradients) as FSDP expects.
    """
    if isinstance(next(model.parameters()), DTensor):
        return model(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1][mask].float()
    hidden = model.get_decoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    selected = hidden[:, :-1][mask]  # (N, H): positions that predict a completion token
    head = model.get_output_embeddings()
    bias = None if head.bias is None else head.bias.float()
    return F.linear(selected.float(), head.weight.float(), bias)
