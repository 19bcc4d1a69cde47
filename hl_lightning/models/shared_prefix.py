"""Completion log-probs with each shared prompt run once (prefix sharing), exactly equal to the plain path.

DPO scores the chosen and the rejected completion of the same prompt; KTO scores an item and its
mismatched KL completion, whose prompt is again the item's own. Run as separate rows, the prompt is
computed twice for the policy (forward and backward) and twice for the reference. Here the rows that share
a prompt become one sequence ``[prompt | completion 1 | completion 2 | ...]``: every completion restarts
its position ids where the prompt ends and, through a 4D attention mask, sees the prompt's keys and values
and its own earlier tokens, never another completion's. Each completion token therefore sees exactly the
tokens (at exactly the positions) it sees in its own row, so log-probs and gradients equal the plain
path's up to floating-point summation order, while a prompt of ``p`` tokens is computed once instead of
once per completion. Gradients reach the prompt's activations from every completion that attends to it.

Like :func:`~hl_lightning.models.logprobs.completion_logps`, the LM head and the log-softmax run only at
positions that predict a completion token (selected-token form ``logit[y] - logsumexp(logits)`` on fp32
logits), and the result has exactly the plain layout: (N, T-1) log-probs and mask of the input batch, so
callers, caches and objectives cannot tell the two paths apart.

Padding-free option (``pack``): all the group sequences are laid end to end in one row (the mask keeps
them apart), so not one padding token is computed. Attention then spans the packed row, so packing pays
only while the padding it removes costs more than the longer attention; ``pack="auto"`` decides that from
the model's shapes (it essentially never pays for long sequences).

The prefix-sharing mask needs an attention implementation that takes a custom 4D mask ("sdpa", the
default on CPU, or "eager") and no sliding window shorter than the shared sequence; otherwise, or when
no two rows share a prompt, the plain path runs instead (same result).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import torch
from torch.distributed.tensor import DTensor

from hl_lightning.models.logprobs import TokenLogps, completion_logps, head_logps

if TYPE_CHECKING:
    from hl_lightning.models.logprobs import CausalLM

_MASK_ATTENTION = ("sdpa", "eager")  # implementations that take a custom additive 4D mask


class PrefixLayout(NamedTuple):
    """Where every token of a plain batch goes in the shared-prefix layout, and what to score.

    Attributes:
        input_ids: (R, L) ids of the shared sequences (pad id 0 where nothing is).
        position_ids: (R, L) position of each token in its own plain row.
        mask: (R, 1, L, L) bool, True where query (dim 2) may attend to key (dim 3).
        src_rows, src_cols: (M,) layout coordinates of the hidden states that predict a completion token.
        targets: (M,) the predicted token ids.
        out_rows, out_cols: (M,) where each log-prob goes in the plain (N, T-1) layout.
        tokens: number of real (non-padding) tokens in the layout, for reporting.
    """

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    mask: torch.Tensor
    src_rows: torch.Tensor
    src_cols: torch.Tensor
    targets: torch.Tensor
    out_rows: torch.Tensor
    out_cols: torch.Tensor
    tokens: int


def _row_spans(attention_mask: torch.Tensor, completion_mask: torch.Tensor) -> list[tuple[int, int]] | None:
    """``(prompt_len, total_len)`` of every row, or None if a row is not ``prompt | completion | padding``."""
    real = attention_mask.bool()
    lengths = real.sum(-1)
    prompt_lengths = (real & ~completion_mask).sum(-1)
    width = real.shape[1]
    cols = torch.arange(width, device=real.device)
    expected_real = cols[None] < lengths[:, None]
    expected_completion = (cols[None] >= prompt_lengths[:, None]) & expected_real
    if not (torch.equal(real, expected_real) and torch.equal(completion_mask & real, expected_completion)):
        return None
    return list(zip(prompt_lengths.tolist(), lengths.tolist(), strict=True))


def _split_groups(
    input_ids: torch.Tensor, spans: list[tuple[int, int]], groups: Sequence[Sequence[int]]
) -> list[list[int]]:
    """Cover every row exactly once; rows of a group whose prompt differs from its first row's split off."""
    out: list[list[int]] = []
    seen: set[int] = set()
    for group in groups:
        pending = [r for r in group if r not in seen]
        while pending:
            head, rest = pending[0], pending[1:]
            p = spans[head][0]
            same = [
                r for r in rest if p > 0 and spans[r][0] == p and torch.equal(input_ids[r, :p], input_ids[head, :p])
            ]
            out.append([head, *same])
            seen.update(out[-1])
            pending = [r for r in rest if r not in same]
    out.extend([r] for r in range(input_ids.shape[0]) if r not in seen)
    return out


def _attention_cost_ratio(model: CausalLM) -> float:
    """Attention FLOPs per (query, key) pair relative to the linear FLOPs per token, per layer."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    hidden = getattr(config, "hidden_size", None)
    layers = getattr(config, "num_hidden_layers", None)
    if not hidden or not layers:
        return float("inf")  # unknown shapes: never pack
    head = model.get_output_embeddings()
    embed_weight = model.get_input_embeddings().get_parameter("weight")
    body = sum(p.numel() for p in model.parameters())
    body -= embed_weight.numel() + (0 if head.weight is embed_weight else head.weight.numel())
    heads = getattr(config, "num_attention_heads", 1)
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    return 2 * heads * head_dim / max(body / layers, 1)  # (QK^T + PV) 4*h*d vs 2*params per token


def _group_sequence(ids: list[list[int]], spans: list[tuple[int, int]], group: list[int]) -> tuple:
    """One group's shared sequence ``[prompt | completion 1 | ...]``: tokens, positions, segment ids (0 = the
    prompt, k = completion k) and the scored tokens ``(plain row, plain col, index of the predicting token)``."""
    p = spans[group[0]][0]
    tokens, positions, segments = ids[group[0]][:p], list(range(p)), [0] * p
    scored = []
    for k, row in enumerate(group):
        start, n = len(tokens), spans[row][1]
        for col in range(max(p, 1), n):  # position 0 is never predicted (the plain mask starts at t = 1)
            scored.append((row, col, (p - 1) if col == p else start + col - p - 1))
        tokens += ids[row][p:n]
        positions += list(range(p, n))
        segments += [k + 1] * (n - p)
    return tokens, positions, segments, scored


def _attention(group_id: torch.Tensor, segment: torch.Tensor) -> torch.Tensor:
    """(R, 1, L, L) bool: a query sees earlier keys of its own group that are the prompt or its own completion."""
    width = group_id.shape[1]
    cols = torch.arange(width)
    q_gid, k_gid = group_id[:, :, None], group_id[:, None, :]
    q_seg, k_seg = segment[:, :, None], segment[:, None, :]
    allowed = (q_gid == k_gid) & (k_gid >= 0) & (cols[None, None, :] <= cols[None, :, None])
    allowed &= (k_seg == 0) | (k_seg == q_seg)
    allowed |= torch.eye(width, dtype=torch.bool)[None]  # padding queries see themselves: no empty softmax row
    return allowed[:, None]


def build_layout(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    completion_mask: torch.Tensor,
    groups: Sequence[Sequence[int]],
    pack: bool = False,
) -> PrefixLayout | None:
    """Lay out a right-padded batch with every group of rows that share a prompt as one sequence.

    Args:
        input_ids, attention_mask, completion_mask: a plain (N, T) batch per docs/CONTRACTS.md.
        groups: row indices expected to share their prompt (e.g. ``[[b, b + B] for b in range(B)]`` for DPO).
            A row whose prompt differs from its group's (or that is in no group) gets a sequence of its own.
        pack: lay all sequences end to end in one row (padding-free) instead of one padded row each.

    Returns:
        The layout, or None when a row is not ``prompt | completion | padding`` (use the plain path).
    """
    spans = _row_spans(attention_mask, completion_mask)
    if spans is None:
        return None
    ids = input_ids.tolist()
    sequences = [_group_sequence(ids, spans, g) for g in _split_groups(input_ids, spans, groups)]
    lengths = [len(seq[0]) for seq in sequences]
    n_rows, width = (1, sum(lengths)) if pack else (len(sequences), max(lengths))
    lay_ids, lay_pos, segment = (torch.zeros(n_rows, width, dtype=torch.long) for _ in range(3))
    group_id = torch.full((n_rows, width), -1, dtype=torch.long)
    coords = []  # (layout row, layout col of the predicting token, target id, plain row, plain col)
    offset = 0
    for g, (tokens, positions, segments, scored) in enumerate(sequences):
        row, start = (0, offset) if pack else (g, 0)
        end = start + len(tokens)
        lay_ids[row, start:end], lay_pos[row, start:end] = torch.tensor(tokens), torch.tensor(positions)
        group_id[row, start:end], segment[row, start:end] = g, torch.tensor(segments)
        coords += [(row, start + pred, ids[plain][col], plain, col - 1) for plain, col, pred in scored]
        offset = end
    device = input_ids.device
    src_rows, src_cols, targets, out_rows, out_cols = (
        torch.tensor(coords, dtype=torch.long, device=device).reshape(-1, 5).T
    )
    mask = _attention(group_id, segment).to(device)
    return PrefixLayout(
        lay_ids.to(device), lay_pos.to(device), mask, src_rows, src_cols, targets, out_rows, out_cols, sum(lengths)
    )


def compute_dtype(model: CausalLM, device: torch.device) -> torch.dtype:
    """The dtype ``model``'s matrix products run in on ``device``: autocast's when it is on, else the weights'."""
    if torch.is_autocast_enabled(device.type):
        return torch.get_autocast_dtype(device.type)
    return model.get_input_embeddings().get_parameter("weight").dtype


def supports_shared_prefix(model: torch.nn.Module) -> bool:
    """Whether ``model``'s attention takes a custom 4D mask (sdpa or eager)."""
    config = getattr(model, "config", None)
    return getattr(config, "_attn_implementation", None) in _MASK_ATTENTION


def _sliding_window_too_short(model: CausalLM, width: int) -> bool:
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    window = getattr(config, "sliding_window", None)
    if window is None or getattr(config, "use_sliding_window", True) is False:
        return False
    return width > window


def choose_pack(model: CausalLM, padded_rows: int, padded_width: int, packed_width: int) -> bool:
    """True when one packed row costs fewer FLOPs than the padded rows (linear layers + attention)."""
    ratio = _attention_cost_ratio(model)

    def cost(rows: int, width: int) -> float:
        return rows * width * (1 + ratio * width)

    return cost(1, packed_width) < cost(padded_rows, padded_width)


def shared_prefix_logps(
    model: CausalLM,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    completion_mask: torch.Tensor,
    groups: Sequence[Sequence[int]],
    pack: bool | str = "auto",
) -> TokenLogps:
    """Same result as ``completion_logps(model, input_ids, attention_mask, completion_mask)``, with every
    group of rows that share a prompt run as one sequence (the prompt once). See the module docstring.

    Args:
        model: a Hugging Face causal LM.
        input_ids, attention_mask, completion_mask: a plain right-padded (N, T) batch (docs/CONTRACTS.md).
        groups: lists of row indices that share their prompt (verified: a row that does not is run alone).
        pack: True: one padding-free row; False: one padded row per group; "auto": whichever costs fewer FLOPs.

    Returns:
        TokenLogps with (N, T-1) fp32 log-probs and mask, in the plain layout.
    """
    if not supports_shared_prefix(model) or isinstance(next(model.parameters()), DTensor):  # FSDP2: plain path
        return completion_logps(model, input_ids, attention_mask, completion_mask)
    layout = build_layout(input_ids, attention_mask, completion_mask, groups, pack=pack is True)
    if layout is None:
        return completion_logps(model, input_ids, attention_mask, completion_mask)
    if pack == "auto":
        packed_width = layout.tokens
        padded_rows, padded_width = layout.input_ids.shape
        if layout.input_ids.shape[0] > 1 and choose_pack(model, padded_rows, padded_width, packed_width):
            layout = build_layout(input_ids, attention_mask, completion_mask, groups, pack=True) or layout
    if _sliding_window_too_short(model, layout.input_ids.shape[1]):
        return completion_logps(model, input_ids, attention_mask, completion_mask)

    # One additive mask for every layer, in the dtype attention computes in (no conversion per layer).
    dtype = compute_dtype(model, input_ids.device)
    mask = torch.zeros(layout.mask.shape, dtype=dtype, device=input_ids.device)
    mask.masked_fill_(~layout.mask, torch.finfo(dtype).min)
    hidden = model.get_decoder()(
        input_ids=layout.input_ids,
        attention_mask=mask,
        position_ids=layout.position_ids,
        use_cache=False,
    ).last_hidden_state
    selected = hidden[layout.src_rows, layout.src_cols]  # (M, H): states that predict a completion token
    token_logps = head_logps(model, selected, layout.targets)
    shape = (input_ids.shape[0], input_ids.shape[1] - 1)
    logps = torch.zeros(shape, dtype=torch.float32, device=input_ids.device)
    logps = logps.index_put((layout.out_rows, layout.out_cols), token_logps)
    mask_out = completion_mask[:, 1:] & attention_mask[:, 1:].bool()
    return TokenLogps(logps, mask_out)
