"""The LM head's selected-token log-probs in chunks of tokens, so that no (N, V) logits tensor is kept.

``log p(y) = logit[y] - logsumexp(logits)`` needs the logits of every vocabulary entry at every scored position.
Run in one piece under autograd, the fp32 (N, V) logits are saved for the backward, and the backward builds two more
tensors of that shape (the softmax and the gradient of the logits): each takes 4 bytes per vocabulary entry per
scored token (with SmolLM2's 49,152-entry vocabulary, about 200 KB per token), at the moment of the step when every
activation of the trunk is alive too.

:class:`ChunkedSelectedLogps` keeps only the inputs and one float per token (the log-sum-exp). Its backward goes
through the tokens chunk by chunk, recomputing each chunk's logits (one extra matmul of the head) to form
``d log p(y) / d logits = onehot(y) - softmax(logits)`` and from it the gradients of the hidden states, the weight
and the bias. The result equals the one-piece form up to floating-point summation order.

Under mixed precision (``torch.autocast``) the head still runs in fp32: autocast is switched off around it
(:func:`autocast_off`), so the logits and the log-sum-exp never pass through bf16 or fp16, nor do their gradients
(the backward runs outside autocast, as Lightning runs it and as PyTorch recommends).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

CHUNK_BYTES = 64 * 2**20  # fp32 logits of one chunk (SmolLM2: 341 tokens); the one-piece form runs below this


def autocast_off(device: torch.device) -> torch.autocast:
    """A region where ``torch.autocast`` is off on ``device``: every op there computes in its inputs' dtype."""
    return torch.autocast(device.type, enabled=False)


def chunk_tokens(vocab: int) -> int:
    """Tokens per chunk: as many as fit :data:`CHUNK_BYTES` of fp32 logits (at least 1)."""
    return max(1, CHUNK_BYTES // (4 * vocab))


class ChunkedSelectedLogps(torch.autograd.Function):
    """``(N,) log_softmax(hidden @ weight.T + bias)[targets]``, chunked over the N tokens (see the module docstring).

    Inputs are fp32: ``hidden`` (N, H), ``weight`` (V, H), ``bias`` (V,) or None, ``targets`` (N,) long, ``chunk``
    the tokens per chunk.
    """

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, chunk):
        out, lse = hidden.new_empty(hidden.shape[0]), hidden.new_empty(hidden.shape[0])
        for start in range(0, hidden.shape[0], chunk):
            logits = F.linear(hidden[start : start + chunk], weight, bias)
            lse[start : start + chunk] = logits.logsumexp(-1)
            out[start : start + chunk] = logits.gather(-1, targets[start : start + chunk, None]).squeeze(-1)
        ctx.save_for_backward(hidden, weight, bias, targets, lse)
        ctx.chunk = chunk
        return out - lse

    @staticmethod
    def backward(ctx, grad_out):
        hidden, weight, bias, targets, lse = ctx.saved_tensors
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        grad_h = torch.zeros_like(hidden) if need_h else None
        grad_w = torch.zeros_like(weight) if need_w else None
        grad_b = torch.zeros_like(bias) if need_b else None
        for start in range(0, hidden.shape[0], ctx.chunk):
            part = slice(start, start + ctx.chunk)
            probs = (F.linear(hidden[part], weight, bias) - lse[part, None]).exp_()  # softmax of the chunk
            grad_logits = probs.neg_().scatter_add_(-1, targets[part, None], probs.new_ones(probs.shape[0], 1))
            grad_logits.mul_(grad_out[part, None])  # (onehot - softmax) * upstream gradient
            if grad_h is not None:
                grad_h[part] = grad_logits @ weight
            if grad_w is not None:
                grad_w.addmm_(grad_logits.T, hidden[part])
            if grad_b is not None:
                grad_b += grad_logits.sum(0)
        return grad_h, grad_w, grad_b, None, None


def selected_logps(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(N,) ``log_softmax(logits)[target]`` as ``logit[y] - logsumexp(logits)``, without an (N, V) log-softmax."""
    return logits.gather(-1, targets[:, None]).squeeze(-1) - logits.logsumexp(-1)


def linear_selected_logps(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    chunk: int | None = None,
) -> torch.Tensor:
    """(N,) fp32 ``log_softmax(F.linear(hidden, weight, bias))[targets]``, in chunks of ``chunk`` tokens.

    ``chunk`` defaults to :func:`chunk_tokens` of the vocabulary; at most one chunk of tokens runs in one piece
    (no recomputation). Inputs are cast to fp32 first (gradients flow back to their own dtype), and the head runs
    with autocast off, so under mixed precision too the logits and the log-softmax are fp32.
    """
    with autocast_off(hidden.device):
        hidden, weight = hidden.float(), weight.float()
        bias = None if bias is None else bias.float()
        chunk = chunk or chunk_tokens(weight.shape[0])
        if hidden.shape[0] <= chunk:
            return selected_logps(F.linear(hidden, weight, bias), targets)
        return ChunkedSelectedLogps.apply(hidden, weight, bias, targets, chunk)  # no_grad (reference): forward only
