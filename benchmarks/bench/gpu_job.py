"""The job of ``benchmarks/bench_gpu.py``, the same for both frameworks: a seeded random Llama, synthetic preference
pairs of token ids, the model FLOPs of a step, and the bf16 dense peak of the GPU it runs on."""

from __future__ import annotations

import re

# ~1B parameters, the shape of Llama 3.2 1B with a 32000-token vocabulary: 16 layers of width 2048, 32 query and
# 8 key/value heads, gated MLP of 8192, tied input embedding and LM head (1.04B parameters).
FULL_CONFIG = dict(
    hidden_size=2048,
    num_hidden_layers=16,
    num_attention_heads=32,
    num_key_value_heads=8,
    intermediate_size=8192,
    vocab_size=32000,
    max_position_embeddings=4096,
    tie_word_embeddings=True,
)
# --tiny: the same architecture at toy size, so that the whole script runs on a CPU in seconds.
TINY_CONFIG = dict(
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    intermediate_size=128,
    vocab_size=512,
    max_position_embeddings=256,
    tie_word_embeddings=True,
)
PAD_ID, EOS_ID, FIRST_TOKEN = 0, 1, 3  # synthetic ids are drawn from [FIRST_TOKEN, vocab)

# bf16 dense tensor-core peak (no sparsity), TFLOP/s, by a name fragment of torch.cuda.get_device_name(); the
# first match wins, so the PCIe / NVL variants of the H100 come before the SXM one ("NVIDIA H100 80GB HBM3").
BF16_PEAK_TFLOPS = [
    (("H100", "PCIe"), 756.0),
    (("H100", "NVL"), 835.0),
    (("H100",), 989.0),
    (("H200",), 989.0),
    (("GH200",), 989.0),
    (("A100",), 312.0),
    (("L40S",), 362.0),
    (("L4",), 121.0),
]


def bf16_peak_tflops(device_name: str | None) -> float | None:
    """The bf16 dense peak of a GPU named ``device_name`` (None for a CPU or a GPU not in the table)."""
    if not device_name:
        return None
    for fragments, tflops in BF16_PEAK_TFLOPS:
        if all(f in device_name for f in fragments):
            return tflops
    return None


def device_slug(device_name: str) -> str:
    """``"NVIDIA H100 80GB HBM3"`` -> ``"nvidia_h100_80gb_hbm3"`` (the result files' name)."""
    return re.sub(r"[^a-z0-9]+", "_", device_name.lower()).strip("_")


def build_model(config: dict, seed: int, device: str):
    """The seeded random ``LlamaForCausalLM`` of ``config``, fp32, built on ``device``: the same weights in every
    process that asks with the same seed and device."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    llama = LlamaConfig(
        **config, pad_token_id=PAD_ID, eos_token_id=EOS_ID, bos_token_id=None, use_cache=False, dtype="float32"
    )
    with torch.device(device):
        model = LlamaForCausalLM(llama)
    return model.float().train()


def matmul_params(model) -> int:
    """N of the FLOP formula: every parameter except an input embedding that is not also the LM head (a lookup
    does no matrix product; a tied embedding is counted once, as the head)."""
    params = {p.data_ptr(): p.numel() for p in model.parameters()}
    embed, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    if embed.data_ptr() != head.data_ptr():
        params.pop(embed.data_ptr())
    return sum(params.values())


def synthetic_pairs(spec: dict) -> list[dict]:
    """``steps * pairs`` preference pairs of random token ids (seeded): a prompt of ``prompt_len`` ids, a chosen
    and a rejected completion of ``completion_len`` ids each, the last one EOS. No padding anywhere."""
    import torch

    g = torch.Generator().manual_seed(spec["seed"])
    vocab = spec["config"]["vocab_size"]

    def ids(n: int) -> list[int]:
        return torch.randint(FIRST_TOKEN, vocab, (n,), generator=g).tolist()

    return [
        {
            "prompt_ids": ids(spec["prompt_len"]),
            "chosen_ids": [*ids(spec["completion_len"] - 1), EOS_ID],
            "rejected_ids": [*ids(spec["completion_len"] - 1), EOS_ID],
        }
        for _ in range(spec["steps"] * spec["pairs"])
    ]


def tokens_per_step(spec: dict) -> int:
    """Tokens of one step's job: every pair's chosen and rejected sequence, each with its prompt."""
    return spec["pairs"] * 2 * (spec["prompt_len"] + spec["completion_len"])


def step_flops(n_params: int, tokens: int) -> float:
    """Model FLOPs of a humanline DPO step: the policy's forward and backward (6 N per token) plus the reference's
    forward (2 N per token), attention scores left out, every token of the job counted (a prompt that a framework
    runs once for both completions is still counted twice)."""
    return (6 + 2) * n_params * tokens
