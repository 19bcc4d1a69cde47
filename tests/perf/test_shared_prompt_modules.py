"""``DPOModule``, ``KTOModule`` and ``GRPOModule`` with ``share_prompt`` (a prompt shared by several rows runs once,
for the policy and the reference) compute what they compute without it: loss, every metric and every policy
gradient within 1e-5. The shared path is forced (falling back to the plain path fails the test)."""

from __future__ import annotations

import pytest
import torch

from hl_lightning.data.groups import collate_groups
from hl_lightning.data.tokenize import join
from hl_lightning.data.unpaired import collate_unpaired
from hl_lightning.modules import DPOModule, GRPOModule, KTOModule
from hl_lightning.objectives import ClipLogRatio
from tests.perf.test_exact_speedups import PAD, TOL, grads, ids, pair_batch


def forbid_plain_path(monkeypatch) -> None:
    """Make the shared path fail loudly if it silently fell back to the plain one."""

    def refuse(*args, **kwargs):
        raise AssertionError("shared_prefix_logps fell back to the plain path")

    monkeypatch.setattr("hl_lightning.models.shared_prefix.completion_logps", refuse)


def perturb_reference(module) -> None:
    """Make the reference differ from the policy, so that log-ratios are not all 0 (and the clip bites)."""
    with torch.no_grad():
        for p in module.ref.parameters():
            p.add_(0.02 * torch.randn_like(p))


def assert_shared_equals_plain(module, batch, monkeypatch) -> None:
    """``compute_loss`` + backward with ``share_prompt`` (the plain path forbidden) and without: the same loss,
    metrics and policy gradients within 1e-5, and some gradient is non-zero."""

    def run(share):
        module.share_prompt = share
        module.policy.zero_grad(set_to_none=True)
        out = module.compute_loss(batch)
        out.loss.backward()
        return out, grads(module.policy)

    with monkeypatch.context() as patch:
        forbid_plain_path(patch)
        shared = run(True)
    plain = run(False)
    torch.testing.assert_close(shared[0].loss, plain[0].loss, **TOL)
    assert shared[0].metrics.keys() == plain[0].metrics.keys()
    for key in plain[0].metrics:
        torch.testing.assert_close(shared[0].metrics[key], plain[0].metrics[key], **TOL)
    assert any(g.abs().sum() > 0 for g in plain[1])
    for a, b in zip(shared[1], plain[1], strict=True):
        torch.testing.assert_close(a, b, **TOL)


@pytest.mark.parametrize("clip", [None, ClipLogRatio()])
def test_dpo_module_share_prompt_equals_plain(clip, monkeypatch):
    """DPOModule: loss, every metric and every policy gradient are the same with and without share_prompt."""
    module = DPOModule(model="tiny-random", clip=clip)
    perturb_reference(module)
    batch = pair_batch(prompt_lens=(7, 2, 12, 4), chosen_lens=(3, 5, 1, 4), rejected_lens=(6, 1, 2, 4))
    assert_shared_equals_plain(module, batch, monkeypatch)


@pytest.mark.parametrize("clip", [None, ClipLogRatio()])
def test_kto_module_share_prompt_equals_plain(clip, monkeypatch):
    """KTOModule: items and their KL rows in one forward == the separate forwards (loss, KL, gradients)."""
    module = KTOModule(model="tiny-random", clip=clip)
    perturb_reference(module)
    g = torch.Generator().manual_seed(5)
    items = [
        {"prompt_ids": ids(g, p), "completion_ids": ids(g, c), "desirable": d, "index": i}
        for i, (p, c, d) in enumerate([(6, 3, True), (9, 5, False), (3, 2, True), (12, 4, False)])
    ]
    batch = collate_unpaired(items, pad_id=PAD, max_length=64)
    assert_shared_equals_plain(module, batch, monkeypatch)


def group_items(group_sizes=(4, 8), prompt_lens=(9, 3), seed=7) -> list[dict]:
    """GRPO groups (tokenised like GroupDataModule's): prompts of different lengths, completions of 1..6 tokens,
    advantages of both signs (so the PPO clip bites in both directions)."""
    g = torch.Generator().manual_seed(seed)
    items, start = [], 0
    for size, p in zip(group_sizes, prompt_lens, strict=True):
        prompt = ids(g, p)
        lens = torch.randint(1, 7, (size,), generator=g).tolist()
        adv = torch.randn(size, generator=g).tolist()
        items.append(
            {
                "sequences": [join(prompt, ids(g, n)) for n in lens],
                "rewards": adv,
                "advantages": adv,
                "index": list(range(start, start + size)),
            }
        )
        start += size
    return items


@pytest.mark.parametrize("clip", [None, ClipLogRatio()])
@pytest.mark.parametrize("sizes", [(4, 4), (8, 8)])
def test_grpo_module_share_prompt_equals_plain(clip, sizes, monkeypatch):
    """GRPOModule: a group's prompt run once for all its completions (policy and reference) == one row per
    completion: loss, every metric and every policy gradient, for groups of 4 and of 8, with a KL term."""
    module = GRPOModule(model="tiny-random", clip=clip, kl_beta=0.05)
    perturb_reference(module)
    batch = collate_groups(group_items(group_sizes=sizes), pad_id=PAD)
    assert batch.rows.shared == [list(range(sizes[0])), list(range(sizes[0], sum(sizes)))]
    assert_shared_equals_plain(module, batch, monkeypatch)


def test_dpo_module_share_prompt_with_ref_cache_equals_plain():
    """The reference cache stores and serves the same (plain-layout) log-probs on the shared path."""
    module = DPOModule(model="tiny-random", cache_ref_logps=True)
    rows = pair_batch().rows()
    first = module.ref_logps(rows)  # computed on the shared path, then stored
    module.share_prompt = False
    module.reference = module.reference.inner  # the same reference, uncached
    torch.testing.assert_close(first.logps, module.ref_logps(rows).logps, **TOL)
