"""Lean activations: the same values and gradients as the plain Llama modules, and fewer saved tensors."""

import copy

import torch
import torch.nn.functional as F
from torch import nn

from hl_lightning.models.lean import RMSNormFn, SwiGLUDown, make_lean
from hl_lightning.models.logprobs import completion_logps
from hl_lightning.modules import DPOModule
from tests.conftest import make_batch


def _double(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64, requires_grad=True)


def test_swiglu_down_gradcheck():
    """Finite differences agree with the hand-written backward: with the down projection (weight and bias) and
    without it (the LoRA fallback returns silu(g) * u)."""
    g, u = _double(3, 4, seed=0), _double(3, 4, seed=1)
    weight, bias = _double(2, 4, seed=2), _double(2, seed=3)
    assert torch.autograd.gradcheck(SwiGLUDown.apply, (g, u, weight, bias))
    assert torch.autograd.gradcheck(SwiGLUDown.apply, (g, u, None, None))


def test_swiglu_down_by_hand():
    """g = 0, u = 2: silu(0) = 0, so the output is 0 and d/du = 0; d silu / dg at 0 = sigmoid(0) = 1/2, so
    d out / dg = u * 1/2 = 1 (no down projection)."""
    g = torch.zeros(1, requires_grad=True)
    u = torch.full((1,), 2.0, requires_grad=True)
    out = SwiGLUDown.apply(g, u, None, None)
    out.sum().backward()
    assert out.item() == 0.0 and g.grad.item() == 1.0 and u.grad.item() == 0.0


def test_rmsnorm_gradcheck_and_value():
    """x = (3, 4): mean of squares 12.5, so with eps 0 the output is weight * x / sqrt(12.5); gradcheck in float64."""
    x = torch.tensor([[3.0, 4.0]])
    out = RMSNormFn.apply(x, torch.tensor([1.0, 2.0]), 0.0)
    torch.testing.assert_close(out, torch.tensor([[3.0, 8.0]]) / 12.5**0.5, rtol=1e-6, atol=0)
    assert torch.autograd.gradcheck(RMSNormFn.apply, (_double(3, 5), _double(5, seed=4), 1e-6))  # from the output
    weight = _double(5, seed=4).detach().clone()
    weight[2] = 0.0  # a zero weight: the input is saved instead of the output (the division would be 0 / 0)
    assert torch.autograd.gradcheck(RMSNormFn.apply, (_double(3, 5), weight.requires_grad_(), 1e-6))


def _grads_and_logps(model, batch):
    model.zero_grad()
    out = completion_logps(model, batch["input_ids"], batch["attention_mask"], batch["completion_mask"])
    (out.logps * torch.linspace(0.5, 2.0, out.logps.shape[1])).sum().backward()
    return out.logps.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


def test_lean_model_equals_plain_values_and_every_gradient(tiny_model):
    """The tiny 2-layer Llama: 2 MLPs and 5 RMSNorms become lean; log-probs and every parameter gradient agree."""
    lean = copy.deepcopy(tiny_model)
    assert make_lean(lean) == 2 + 5
    assert type(lean.model.layers[0].mlp).__name__ == "LeanLlamaMLP"
    assert type(lean.model.norm).__name__ == "LeanLlamaRMSNorm"
    batch = make_batch(3, prompt_len=4, completion_lens=[2, 5, 3])
    plain_logps, plain_grads = _grads_and_logps(tiny_model, batch)
    lean_logps, lean_grads = _grads_and_logps(lean, batch)
    torch.testing.assert_close(lean_logps, plain_logps, rtol=1e-6, atol=1e-6)
    assert plain_grads.keys() == lean_grads.keys()
    for name, grad in plain_grads.items():
        torch.testing.assert_close(lean_grads[name], grad, rtol=1e-5, atol=1e-6, msg=name)
    assert make_lean(lean) == 0  # idempotent


def _saved_bytes(model, input_ids) -> int:
    seen = {p.untyped_storage().data_ptr() for p in model.parameters()}
    total = 0

    def pack(t):
        nonlocal total
        if t.untyped_storage().data_ptr() not in seen:
            seen.add(t.untyped_storage().data_ptr())
            total += t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model.get_decoder()(input_ids=input_ids).last_hidden_state.sum()
    return total


def test_lean_saves_two_intermediate_and_two_hidden_tensors_less_per_module(tiny_model):
    """Per token, fp32: each MLP saves 2 intermediate-size tensors less (silu(gate) and the product); each of the
    4 layer RMSNorms 2 hidden-size ones less (its input and the normalised input: it keeps its output, which the
    projections after it keep anyway), the final norm 1 (its output is kept by no one else):
    2 layers x (2 x 128 + 2 x 2 x 64) + 64 floats per token."""
    ids = torch.randint(3, 1000, (2, 7), generator=torch.Generator().manual_seed(0))
    plain = _saved_bytes(tiny_model, ids)
    lean = copy.deepcopy(tiny_model)
    make_lean(lean)
    tokens, config = ids.numel(), tiny_model.config
    layers, inter, hidden = config.num_hidden_layers, config.intermediate_size, config.hidden_size
    expected = tokens * 4 * (layers * (2 * inter + 4 * hidden) + hidden)
    assert plain - _saved_bytes(lean, ids) == expected


class Wrapped(nn.Module):
    """A down projection that is not a plain nn.Linear (as a LoRA layer is)."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.inner = linear

    def forward(self, x):
        return self.inner(x) * 1.5


def test_a_wrapped_down_projection_runs_as_itself(tiny_model):
    """The MLP with a wrapped down_proj: the fused product, then the wrapper (its * 1.5 is applied)."""
    mlp = tiny_model.model.layers[0].mlp
    mlp.down_proj = Wrapped(mlp.down_proj)
    x = torch.randn(2, 3, 64)
    want = mlp.down_proj(F.silu(mlp.gate_proj(x)) * mlp.up_proj(x))
    make_lean(tiny_model)
    torch.testing.assert_close(mlp(x), want, rtol=1e-6, atol=1e-6)


def test_unknown_modules_are_left_alone():
    """No gated-SiLU MLP and no known RMSNorm: nothing changes."""
    model = nn.Sequential(nn.Linear(3, 3), nn.LayerNorm(3))
    assert make_lean(model) == 0
    assert [type(m) for m in model] == [nn.Linear, nn.LayerNorm]


def test_module_option_and_reference_inherit_it():
    """DPOModule makes policy and reference lean by default; lean_activations=False keeps the plain classes."""
    lean = DPOModule(model="tiny-random")
    assert type(lean.policy.model.layers[0].mlp).__name__ == "LeanLlamaMLP"
    assert type(lean.ref.model.layers[0].mlp).__name__ == "LeanLlamaMLP"
    plain = DPOModule(model="tiny-random", lean_activations=False)
    assert type(plain.policy.model.layers[0].mlp).__name__ == "LlamaMLP"
    assert type(plain.ref.model.norm).__name__ == "LlamaRMSNorm"
