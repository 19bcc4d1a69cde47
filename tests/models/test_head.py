"""The chunked LM head equals the one-piece selected-token log-probs, in value and gradient, and keeps no (N, V)."""

import math

import pytest
import torch
import torch.nn.functional as F

from hl_lightning.models import head as head_mod
from hl_lightning.models.head import ChunkedSelectedLogps, linear_selected_logps, selected_logps
from hl_lightning.models.logprobs import completion_logps
from tests.conftest import make_batch


def test_hand_example_in_chunks_of_one():
    """hidden rows (1, 0) and (0, 2), weight rows (1, 0), (0, 1), (0, 0), no bias, targets 0 and 1.

    Logits: row 1 (1, 0, 0) -> log p(0) = 1 - log(e + 2); row 2 (0, 2, 0) -> log p(1) = 2 - log(e^2 + 2).
    d log p(y) / d logits = onehot(y) - softmax, so for row 1, d/d hidden = (1 - p0, -p1) @ weight rows 0, 1
    = (1 - e / (e + 2), -1 / (e + 2)).
    """
    hidden = torch.tensor([[1.0, 0.0], [0.0, 2.0]], requires_grad=True)
    weight = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]], requires_grad=True)
    out = ChunkedSelectedLogps.apply(hidden, weight, None, torch.tensor([0, 1]), 1)
    e = math.e
    torch.testing.assert_close(out, torch.tensor([1 - math.log(e + 2), 2 - math.log(e**2 + 2)]), rtol=1e-6, atol=0)
    out[0].backward()
    torch.testing.assert_close(hidden.grad[0], torch.tensor([1 - e / (e + 2), -1 / (e + 2)]), rtol=1e-6, atol=0)
    assert hidden.grad[1].abs().max() == 0  # only row 1 was differentiated


def _inputs(n=7, h=5, v=11, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, h, generator=g, dtype=dtype, requires_grad=True)
    weight = torch.randn(v, h, generator=g, dtype=dtype, requires_grad=True)
    bias = torch.randn(v, generator=g, dtype=dtype, requires_grad=True)
    targets = torch.randint(0, v, (n,), generator=g)
    upstream = torch.randn(n, generator=g, dtype=dtype)
    return hidden, weight, bias, targets, upstream


@pytest.mark.parametrize("chunk", [1, 3, 7, 50])
def test_chunked_equals_one_piece_values_and_gradients(chunk):
    """Any chunk size (dividing N or not, above N) gives the one-piece values and all three gradients."""
    hidden, weight, bias, targets, upstream = _inputs()
    plain = selected_logps(F.linear(hidden, weight, bias), targets)
    plain_grads = torch.autograd.grad((plain * upstream).sum(), (hidden, weight, bias))
    chunked = ChunkedSelectedLogps.apply(hidden, weight, bias, targets, chunk)
    chunked_grads = torch.autograd.grad((chunked * upstream).sum(), (hidden, weight, bias))
    torch.testing.assert_close(chunked, plain, rtol=1e-6, atol=1e-6)
    for got, want in zip(chunked_grads, plain_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_gradcheck_float64():
    """Finite differences agree with the hand-written backward (float64, chunk of 2 over 5 tokens)."""
    hidden, weight, bias, targets, _ = _inputs(n=5, h=3, v=4, dtype=torch.float64)
    assert torch.autograd.gradcheck(ChunkedSelectedLogps.apply, (hidden, weight, bias, targets, 2))


def test_frozen_weight_gets_no_gradient_and_hidden_still_does():
    """A frozen head (LoRA): only the hidden states get a gradient, equal to the one-piece one."""
    hidden, weight, _, targets, upstream = _inputs()
    weight = weight.detach()
    plain = torch.autograd.grad((selected_logps(F.linear(hidden, weight), targets) * upstream).sum(), hidden)[0]
    out = linear_selected_logps(hidden, weight, None, targets, chunk=2)
    assert out.grad_fn is not None and "ChunkedSelectedLogps" in type(out.grad_fn).__name__
    (got,) = torch.autograd.grad((out * upstream).sum(), hidden)
    torch.testing.assert_close(got, plain, rtol=1e-5, atol=1e-6)


def test_no_n_by_v_tensor_is_saved_for_backward():
    """Under autograd the chunked path saves inputs and (N,) log-sum-exps only; the one-piece form saves (N, V)."""
    hidden, weight, bias, targets, _ = _inputs(n=40, h=4, v=30)
    shapes = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: shapes.append(tuple(t.shape)) or t, lambda t: t):
        linear_selected_logps(hidden, weight, bias, targets, chunk=8)
    assert (40, 30) not in shapes and (8, 30) not in shapes
    assert (40,) in shapes  # the log-sum-exp
    shapes.clear()
    with torch.autograd.graph.saved_tensors_hooks(lambda t: shapes.append(tuple(t.shape)) or t, lambda t: t):
        linear_selected_logps(hidden, weight, bias, targets, chunk=40)  # one piece: the logits are saved
    assert (40, 30) in shapes


def test_no_grad_chunks_equal_one_piece():
    """The reference's path (no autograd) in chunks gives the one-piece values."""
    hidden, weight, bias, targets, _ = _inputs(n=9)
    with torch.no_grad():
        got = linear_selected_logps(hidden, weight, bias, targets, chunk=4)
        want = selected_logps(F.linear(hidden, weight, bias), targets)
    assert got.grad_fn is None
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)


def test_completion_logps_through_chunks_equals_one_piece(tiny_model, monkeypatch):
    """The model-level path with a chunk of 3 tokens: same log-probs and parameter gradients as one piece."""
    batch = make_batch(3, prompt_len=4, completion_lens=[2, 5, 3])
    args = (batch["input_ids"], batch["attention_mask"], batch["completion_mask"])

    def run():
        tiny_model.zero_grad()
        out = completion_logps(tiny_model, *args)
        (out.logps * torch.linspace(0.5, 2.0, out.logps.shape[1])).sum().backward()
        return out.logps.detach(), [p.grad.clone() for p in tiny_model.parameters() if p.grad is not None]

    one_logps, one_grads = run()
    monkeypatch.setattr(head_mod, "CHUNK_BYTES", 3 * 4 * tiny_model.config.vocab_size)
    assert head_mod.chunk_tokens(tiny_model.config.vocab_size) == 3
    chunk_logps, chunk_grads = run()
    torch.testing.assert_close(chunk_logps, one_logps, rtol=1e-6, atol=1e-6)
    assert len(chunk_grads) == len(one_grads) > 0
    for got, want in zip(chunk_grads, one_grads, strict=True):  # 1e-5 of each gradient's scale (summation order)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5 * want.abs().max().item())
