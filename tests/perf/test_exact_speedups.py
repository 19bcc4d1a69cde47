"""Every speed / memory shortcut computes exactly what the straightforward path computes.

Straightforward path = the full (B, T, V) logits of the model's own forward, log-softmax, gather, one row per
(prompt, completion), padded to a fixed width. Each shortcut must give the same loss and the same gradient
of every policy parameter, within 1e-5:

- ``completion_logps``: LM head + log-softmax only at completion positions, selected-token form;
- no compute on padding: the collate pads only to the batch's longest row, extra padding changes nothing,
  and the padding-free (packed) layout equals the padded one;
- shared prompts (``shared_prefix_logps``): the prompt runs once for all completions that continue it, prompts
  of different lengths in one batch (the modules' ``share_prompt`` in ``test_shared_prompt_modules.py``).
"""

from __future__ import annotations

import pytest
import torch

from hl_lightning.data.preference import collate_pairs
from hl_lightning.data.tokenize import join, pad_batch
from hl_lightning.models.loading import load_causal_lm
from hl_lightning.models.logprobs import completion_logps
from hl_lightning.models.shared_prefix import build_layout, shared_prefix_logps
from hl_lightning.objectives import ClipLogRatio, DPOLoss

TOL = {"rtol": 1e-5, "atol": 1e-5}
PAD = 2


def ids(g: torch.Generator, n: int) -> list[int]:
    return torch.randint(3, 1000, (n,), generator=g).tolist()


def pair_items(prompt_lens=(5, 11, 3), chosen_lens=(4, 2, 6), rejected_lens=(3, 7, 1), seed=0) -> list[dict]:
    """DPO items (tokenised like PreferenceDataModule's) with prompts of different lengths."""
    g = torch.Generator().manual_seed(seed)
    items = []
    for i, (p, c, r) in enumerate(zip(prompt_lens, chosen_lens, rejected_lens, strict=True)):
        prompt = ids(g, p)
        items.append({"chosen": join(prompt, ids(g, c)), "rejected": join(prompt, ids(g, r)), "index": i})
    return items


def pair_batch(**kwargs):
    return collate_pairs(pair_items(**kwargs), pad_id=PAD)


def pair_rows(**kwargs):
    """A paired batch as one row set (chosen rows, then rejected rows; ``shared`` = each pair's two rows),
    its number of pairs, and its (input_ids, attention_mask, completion_mask)."""
    batch = pair_batch(**kwargs)
    rows = batch.rows()
    return rows, len(batch), (rows.input_ids, rows.attention_mask, rows.completion_mask)


def straightforward_logps(model, input_ids, attention_mask, completion_mask) -> torch.Tensor:
    """Full logits -> log_softmax over the whole vocabulary -> gather; (B, T-1), 0 off the completion."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits.float()  # (B, T, V)
    logps = logits[:, :-1].log_softmax(-1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)
    mask = completion_mask[:, 1:] & attention_mask[:, 1:].bool()
    return logps * mask


def grads(model) -> list[torch.Tensor]:
    return [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in model.parameters()]


def loss_and_grads(model, fn):
    """Run ``fn() -> (loss, logps)``, backprop, return (loss, logps, grads) and clear the grads."""
    model.zero_grad(set_to_none=True)
    loss, logps = fn()
    loss.backward()
    out = loss.detach(), logps.detach(), grads(model)
    model.zero_grad(set_to_none=True)
    return out


def assert_same(a, b, tol=TOL) -> None:
    torch.testing.assert_close(a[0], b[0], **tol)
    torch.testing.assert_close(a[1], b[1], **tol)
    assert len(a[2]) == len(b[2])
    for ga, gb in zip(a[2], b[2], strict=True):
        torch.testing.assert_close(ga, gb, **tol)


def dpo_loss(logps: torch.Tensor, mask: torch.Tensor, n: int, clip=None) -> torch.Tensor:
    """DPO loss of a paired batch against a fixed reference (shifted so the clip bites on some tokens)."""
    rows, cols = torch.meshgrid(torch.arange(logps.shape[0]), torch.arange(logps.shape[1]), indexing="ij")
    ref = (logps.detach() - 2.0 * torch.cos(0.7 * cols + 1.3 * rows)) * mask  # independent of the width
    return DPOLoss(beta=0.1, clip=clip)(
        policy_chosen_logps=logps[:n],
        ref_chosen_logps=ref[:n],
        chosen_mask=mask[:n],
        policy_rejected_logps=logps[n:],
        ref_rejected_logps=ref[n:],
        rejected_mask=mask[n:],
    ).loss


@pytest.fixture
def model():
    torch.manual_seed(0)
    return load_causal_lm("tiny-random")


# --------------------------------------------------------------------------- LM head only at completions
@pytest.mark.parametrize("clip", [None, ClipLogRatio()])
def test_completion_logps_equals_full_logits_log_softmax(model, clip):
    """Selected-token form at completion positions only == full (B, T, V) log_softmax: loss and gradients."""
    rows, n, args = pair_rows()
    mask = rows.completion_mask[:, 1:] & rows.attention_mask[:, 1:].bool()

    def ours():
        out = completion_logps(model, *args)
        assert torch.equal(out.mask, mask)
        return dpo_loss(out.logps, mask, n, clip), out.logps

    def straightforward():
        logps = straightforward_logps(model, *args)
        return dpo_loss(logps, mask, n, clip), logps

    assert_same(loss_and_grads(model, ours), loss_and_grads(model, straightforward))


# --------------------------------------------------------------------------- no compute on padding
def test_collate_pads_only_to_the_longest_row():
    items = pair_items()
    batch = collate_pairs(items, pad_id=PAD)
    for role in ("chosen", "rejected"):
        rows = getattr(batch, role)
        longest = max(len(it[role]["input_ids"]) for it in items)
        assert rows.width == longest
        assert rows.attention_mask.sum(-1).max() == longest


def test_extra_padding_changes_nothing(model):
    """A batch padded 9 columns wider (as a fixed max_length would) gives the same loss and gradients."""
    rows, n, args = pair_rows()
    wide = [torch.nn.functional.pad(v, (0, 9), value=PAD if k == 0 else 0) for k, v in enumerate(args)]

    def run(tensors):
        def fn():
            out = completion_logps(model, *tensors)
            return dpo_loss(out.logps, out.mask, n), out.logps[:, : rows.width - 1]

        return fn

    assert_same(loss_and_grads(model, run(args)), loss_and_grads(model, run(wide)))


def test_padding_free_layout_equals_padded_layout_and_plain(model):
    """One packed row without a single padding token == one padded row per prompt == the plain path."""
    rows, n, args = pair_rows()
    packed = build_layout(*args, rows.shared, pack=True)
    assert packed.input_ids.shape == (1, packed.tokens)  # no padding at all

    def run(pack):
        def fn():
            out = shared_prefix_logps(model, *args, rows.shared, pack=pack)
            return dpo_loss(out.logps, out.mask, n), out.logps

        return fn

    def plain_fn():
        out = completion_logps(model, *args)
        return dpo_loss(out.logps, out.mask, n), out.logps

    plain = loss_and_grads(model, plain_fn)
    assert_same(loss_and_grads(model, run(True)), plain)
    assert_same(loss_and_grads(model, run(False)), plain)


# --------------------------------------------------------------------------- shared prompt
@pytest.mark.parametrize("clip", [None, ClipLogRatio()])
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_shared_prompt_equals_straightforward_path(model, clip, attn):
    """Prompts of 5, 11 and 3 tokens in one batch, each run once for chosen and rejected == full-logits path."""
    model.config._attn_implementation = attn
    rows, n, args = pair_rows()
    layout = build_layout(*args, rows.shared)
    real = int(rows.attention_mask.sum())
    assert layout.tokens == real - (5 + 11 + 3)  # every prompt token computed once, not twice

    def shared():
        out = shared_prefix_logps(model, *args, rows.shared, pack=False)
        return dpo_loss(out.logps, out.mask, n, clip), out.logps

    def straightforward():
        logps = straightforward_logps(model, *args)
        return dpo_loss(logps, args[2][:, 1:] & args[1][:, 1:].bool(), n, clip), logps

    assert_same(loss_and_grads(model, shared), loss_and_grads(model, straightforward))


def test_shared_prompt_handles_rows_that_do_not_share(model):
    """A 'pair' whose prompts differ, and a row with an empty prompt, are run on their own: still exact."""
    g = torch.Generator().manual_seed(3)
    p1, p2 = ids(g, 6), ids(g, 6)
    rows = [join(p1, ids(g, 3)), join([], ids(g, 4)), join(p2, ids(g, 2)), join(p1[:5], ids(g, 5))]
    batch = pad_batch(rows, PAD)
    args = batch.input_ids, batch.attention_mask, batch.completion_mask

    def run(fn):
        def inner():
            out = fn()
            return (out.logps * torch.linspace(0.5, 1.5, out.logps.numel()).view_as(out.logps)).sum(), out.logps

        return inner

    assert_same(
        loss_and_grads(model, run(lambda: shared_prefix_logps(model, *args, [[0, 2], [1, 3]]))),
        loss_and_grads(model, run(lambda: completion_logps(model, *args))),
    )
