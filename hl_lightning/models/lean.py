"""Leaner saved activations for Llama-style decoders: the same maths, fewer tensors kept for the backward.

In a Llama-style decoder, most of what a training step keeps for its backward is elementwise by-products. A
gated MLP ``down(silu(gate(x)) * up(x))`` saves four intermediate-size tensors per token (``gate(x)`` for the
SiLU, ``silu(gate(x))`` and ``up(x)`` for the product, the product for ``down``), an RMSNorm two hidden-size ones
(its input and the normalised input). :func:`make_lean` gives those modules a forward whose backward recomputes
the elementwise part instead: the MLP keeps ``gate(x)`` and ``up(x)`` (:class:`SwiGLUDown`), the RMSNorm its
output (which the next projections keep anyway) and one float per token (:class:`RMSNormFn`). No matrix product is
recomputed, so the speed is that of the plain modules; values and gradients equal theirs up to floating-point
summation order (``tests/models/test_lean.py``).

Only modules whose maths is known are changed: an MLP with ``gate_proj`` / ``up_proj`` / ``down_proj`` and a
``silu`` activation (Llama, Mistral, Qwen2/3), and the RMSNorms of :data:`RMS_NORMS`. A ``down_proj`` that is not a
plain ``nn.Linear`` at call time (a LoRA layer) runs as itself after the fused product.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

RMS_NORMS = ("LlamaRMSNorm", "MistralRMSNorm", "Qwen2RMSNorm", "Qwen3RMSNorm")  # weight * x / rms(x), no offset
_SILU = ("silu", "swish")


class SwiGLUDown(torch.autograd.Function):
    """``F.linear(silu(g) * u, weight, bias)`` saving ``g``, ``u`` and the weight only; ``weight`` None: just
    ``silu(g) * u`` (a LoRA ``down_proj`` runs after it)."""

    @staticmethod
    def forward(ctx, g, u, weight, bias):
        ctx.save_for_backward(g, u, weight)
        ctx.has_bias = bias is not None
        h = F.silu(g) * u
        return h if weight is None else F.linear(h, weight, bias)

    @staticmethod
    def backward(ctx, grad_out):
        g, u, weight = ctx.saved_tensors
        sig = torch.sigmoid(g)
        silu = g * sig
        grad_w = grad_b = None
        if weight is None:
            grad_h = grad_out
        else:
            h = silu * u
            grad_h = grad_out @ weight
            if ctx.needs_input_grad[2]:
                grad_w = grad_out.reshape(-1, grad_out.shape[-1]).T @ h.reshape(-1, h.shape[-1])
            if ctx.has_bias and ctx.needs_input_grad[3]:
                grad_b = grad_out.reshape(-1, grad_out.shape[-1]).sum(0)
        grad_g = grad_h * u * (sig * (1 + g * (1 - sig)))  # d silu(g) / dg = sig (1 + g (1 - sig))
        return grad_g, grad_h * silu, grad_w, grad_b


def _stats_dtype(t: torch.Tensor) -> torch.Tensor:
    """``t`` in at least fp32 (the RMSNorm's statistics; float64 stays float64)."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


class RMSNormFn(torch.autograd.Function):
    """``weight * (x * rsqrt(mean(x^2) + eps)).to(x.dtype)`` (statistics in fp32), saving its output and the
    per-token ``rsqrt`` only: the projections that follow save that output anyway (one storage), and the backward
    needs the normalised input ``output / weight``, not ``x``. Below fp32, or with a zero in ``weight``, the
    division would lose the normalised input, so ``x`` is saved instead."""

    @staticmethod
    def forward(ctx, x, weight, eps):
        x32 = _stats_dtype(x)
        rstd = torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
        out = weight * (x32 * rstd).to(x.dtype)
        ctx.from_output = out.dtype == x32.dtype and weight.dtype == x32.dtype and bool((weight != 0).all())
        ctx.save_for_backward(out if ctx.from_output else x, weight, rstd)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        saved, weight, rstd = ctx.saved_tensors
        xhat = saved / weight if ctx.from_output else _stats_dtype(saved) * rstd
        grad_w = None
        if ctx.needs_input_grad[1]:
            grad_w = (_stats_dtype(grad_out) * _stats_dtype(xhat.to(saved.dtype))).reshape(-1, xhat.shape[-1]).sum(0)
            grad_w = grad_w.to(weight.dtype)
        grad_xhat = _stats_dtype(grad_out * weight)
        grad_x = rstd * (grad_xhat - xhat * (grad_xhat * xhat).mean(-1, keepdim=True))
        return grad_x.to(saved.dtype), grad_w, None


def _autocast(weight: torch.Tensor | None, device: torch.device) -> torch.Tensor | None:
    """``weight`` as ``F.linear`` would use it on ``device``: cast to the autocast dtype when autocast is on there."""
    if weight is None or not torch.is_autocast_enabled(device.type):
        return weight
    return weight.to(torch.get_autocast_dtype(device.type))


def lean_mlp_forward(self, x: torch.Tensor) -> torch.Tensor:
    """The gated MLP through :class:`SwiGLUDown` (see the module docstring). Under ``torch.autocast`` the down
    projection's weight enters in the autocast dtype, as it would enter ``nn.Linear`` (an autograd Function is not
    autocast itself), so its forward and backward products run in that dtype."""
    down = self.down_proj
    g, u = self.gate_proj(x), self.up_proj(x)
    if type(down) is nn.Linear:
        return SwiGLUDown.apply(g, u, _autocast(down.weight, x.device), _autocast(down.bias, x.device))
    return down(SwiGLUDown.apply(g, u, None, None))


def lean_rmsnorm_forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
    """The RMSNorm through :class:`RMSNormFn`."""
    return RMSNormFn.apply(hidden_states, self.weight, self.variance_epsilon)


_LEAN_CLASSES: dict[type, type] = {}


def _lean_class(cls: type, forward) -> type:
    """A subclass of ``cls`` with ``forward`` (one per class; a module keeps its state, only its forward changes)."""
    if cls not in _LEAN_CLASSES:
        _LEAN_CLASSES[cls] = type(f"Lean{cls.__name__}", (cls,), {"forward": forward, "__module__": __name__})
    return _LEAN_CLASSES[cls]


def _is_gated_silu_mlp(module: nn.Module) -> bool:
    config = getattr(module, "config", None)
    return (
        all(isinstance(getattr(module, n, None), nn.Module) for n in ("gate_proj", "up_proj", "down_proj"))
        and getattr(config, "hidden_act", None) in _SILU
    )


def make_lean(model: nn.Module) -> int:
    """Give every known gated-SiLU MLP and RMSNorm of ``model`` its lean forward, in place; return how many
    modules changed (0 for an architecture it does not know: the model then runs as it was)."""
    changed = 0
    for module in model.modules():
        cls = type(module)
        if cls in _LEAN_CLASSES.values():
            continue
        if _is_gated_silu_mlp(module):
            module.__class__ = _lean_class(cls, lean_mlp_forward)
        elif cls.__name__ in RMS_NORMS and hasattr(module, "variance_epsilon"):
            module.__class__ = _lean_class(cls, lean_rmsnorm_forward)
        else:
            continue
        changed += 1
    return changed
