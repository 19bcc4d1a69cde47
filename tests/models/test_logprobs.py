"""The one log-prob function agrees with a naive per-token loop, masks prompt and padding, and is fp32."""

import torch

from hl_lightning.models.logprobs import completion_logps
from tests.conftest import make_batch


def naive_logps(model, batch):
    """Reference: for every completion position t, run the model on the prefix and read log p(token t)."""
    out = torch.zeros(batch["input_ids"].shape[0], batch["input_ids"].shape[1] - 1)
    for b in range(out.shape[0]):
        for t in range(1, batch["input_ids"].shape[1]):
            if batch["completion_mask"][b, t] and batch["attention_mask"][b, t]:
                prefix = batch["input_ids"][b : b + 1, :t]
                logits = model(input_ids=prefix).logits[0, -1].double()
                out[b, t - 1] = logits.log_softmax(-1)[batch["input_ids"][b, t]].float()
    return out


@torch.no_grad()
def test_matches_naive_loop_with_padding(tiny_model):
    """Right padding of different lengths and the prompt are masked; values match a prefix-by-prefix loop."""
    batch = make_batch(3, prompt_len=4, completion_lens=[2, 5, 3])
    got = completion_logps(tiny_model, batch["input_ids"], batch["attention_mask"], batch["completion_mask"])
    expected = naive_logps(tiny_model, batch)
    assert got.logps.dtype == torch.float32
    assert got.mask.sum(-1).tolist() == [2, 5, 3]
    assert not got.mask[:, :3].any()  # positions predicting prompt tokens
    torch.testing.assert_close(got.logps, expected, rtol=1e-5, atol=1e-5)
    assert (got.logps[~got.mask] == 0).all()


@torch.no_grad()
def test_padding_content_never_changes_the_result(tiny_model):
    """Changing the ids under padding changes nothing."""
    batch = make_batch(2, completion_lens=[2, 4])
    a = completion_logps(tiny_model, batch["input_ids"], batch["attention_mask"], batch["completion_mask"])
    garbage = batch["input_ids"].clone()
    garbage[batch["attention_mask"] == 0] = 777
    b = completion_logps(tiny_model, garbage, batch["attention_mask"], batch["completion_mask"])
    torch.testing.assert_close(a.logps, b.logps, rtol=0, atol=1e-6)


@torch.no_grad()
def test_bf16_model_gives_fp32_logps(tiny_model):
    """A bf16 model still yields fp32 log-probs (log-softmax over fp32 logits)."""
    batch = make_batch(2)
    out = completion_logps(
        tiny_model.to(torch.bfloat16), batch["input_ids"], batch["attention_mask"], batch["completion_mask"]
    )
    assert out.logps.dtype == torch.float32
    assert torch.isfinite(out.logps).all()


def test_gradient_flows_only_from_completion_tokens(tiny_model):
    """The result is differentiable w.r.t. the model, and masked positions contribute no gradient."""
    batch = make_batch(2)
    out = completion_logps(tiny_model, batch["input_ids"], batch["attention_mask"], batch["completion_mask"])
    out.logps.sum().backward()
    assert tiny_model.model.layers[0].self_attn.q_proj.weight.grad.abs().sum() > 0
