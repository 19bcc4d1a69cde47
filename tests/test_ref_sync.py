"""Humanline syncing: which weights the reference holds at each optimizer step (see RefSyncCallback)."""

import pytest
import torch

from hl_lightning.callbacks import RefSyncCallback
from hl_lightning.modules.reference import FrozenCopy
from tests.conftest import make_pair_batches
from tests.helpers import WeightRecorder, loader, tiny_dpo, trainer


def run(tmp_path, steps, callbacks, accumulate=1, **module_kwargs):
    recorder = WeightRecorder()
    module = tiny_dpo(**module_kwargs)
    batches = make_pair_batches(steps * accumulate)
    trainer(steps, [*callbacks, recorder], tmp_path, accumulate_grad_batches=accumulate).fit(module, loader(batches))
    return recorder


def test_k1_reference_is_previous_step_policy(tmp_path):
    """k=1: at step t >= 1 the reference equals θ_{t-1} (the weights behind step t-1's loss) and != θ_t."""
    rec = run(tmp_path, 5, [RefSyncCallback(every_n_steps=1)])
    assert len(rec.policy) == 5
    assert torch.equal(rec.ref[0], rec.policy[0])  # starts as a copy of the initial policy
    for t in range(1, 5):
        assert torch.equal(rec.ref[t], rec.policy[t - 1]), f"step {t}"
        assert not torch.equal(rec.ref[t], rec.policy[t]), f"step {t}"


def test_k3_phase_matches_docstring(tmp_path):
    """k=3: syncs at steps 0, 3, 6, so the reference at step t >= 1 is θ_{3 * floor((t - 1) / 3)}."""
    rec = run(tmp_path, 8, [RefSyncCallback(every_n_steps=3)])
    expected_source = [0, 0, 0, 0, 3, 3, 3, 6]
    for t, source in enumerate(expected_source):
        assert torch.equal(rec.ref[t], rec.policy[source]), f"step {t} should hold θ_{source}"
    assert not torch.equal(rec.ref[3], rec.policy[3])


def test_one_sync_per_optimizer_step_under_accumulation(tmp_path):
    """accumulate_grad_batches=4: 3 optimizer steps = 12 batches, exactly 3 syncs, one-step lag kept."""
    sync = RefSyncCallback(every_n_steps=1)
    rec = run(tmp_path, 3, [sync], accumulate=4)
    assert sync.syncs == 3
    assert len(rec.policy) == 3
    for t in range(1, 3):
        assert torch.equal(rec.ref[t], rec.policy[t - 1])


def test_without_callback_reference_never_changes(tmp_path):
    """No RefSyncCallback: the reference stays the initial policy while the policy moves."""
    rec = run(tmp_path, 4, [])
    for t in range(4):
        assert torch.equal(rec.ref[t], rec.ref[0])
    assert not torch.equal(rec.policy[3], rec.policy[0])


def test_sync_copies_values_not_storage():
    """After a sync the reference is equal to, but never aliases, the policy's tensors."""
    module = tiny_dpo()
    with torch.no_grad():
        next(module.policy.parameters()).add_(1.0)
    module.sync_reference()
    for p, r in zip(module.policy.parameters(), module.ref.parameters(), strict=True):
        assert torch.equal(p, r) and p.data_ptr() != r.data_ptr()
    assert not any(r.requires_grad for r in module.ref.parameters())


def test_sync_copies_every_tensor_once_and_follows_later_changes():
    """One foreach copy over parameters and buffers, a tied weight once; the pairs are built on the first sync
    and stay live: a change to the policy after it (in place, as optimizer steps and load_state_dict do) is
    copied by the next sync, every tensor of the state_dict equal after it."""
    module = tiny_dpo()
    module.policy.tie_weights()
    module.reference = FrozenCopy(module.policy)
    tied = module.policy.get_input_embeddings().weight is module.policy.get_output_embeddings().weight
    module.sync_reference()
    ref, policy = module.reference._sync_pairs(module.policy)
    assert len({t.data_ptr() for t in policy}) == len(policy) == len(ref)
    assert len(policy) == len(list(module.policy.parameters())) + len(list(module.policy.buffers()))
    with torch.no_grad():
        for p in module.policy.parameters():
            p.add_(torch.randn_like(p))
    module.policy.load_state_dict({k: v + 1 for k, v in module.policy.state_dict().items()})
    module.sync_reference()
    for (name, r), p in zip(module.ref.state_dict().items(), module.policy.state_dict().values(), strict=True):
        assert torch.equal(r, p), name
    assert tied == (module.ref.get_input_embeddings().weight is module.ref.get_output_embeddings().weight)


@pytest.mark.parametrize("k", [0, -1, 1.5])
def test_invalid_k_is_refused(k):
    with pytest.raises(ValueError, match="every_n_steps must be an integer >= 1"):
        RefSyncCallback(every_n_steps=k)


def test_cached_reference_logps_with_sync_is_refused(tmp_path):
    """cache_ref_logps would ignore every sync: the callback refuses it before training starts."""
    module = tiny_dpo(cache_ref_logps=True)
    with pytest.raises(ValueError, match="cache_ref_logps"):
        trainer(1, [RefSyncCallback()], tmp_path).fit(module, loader(make_pair_batches(1)))


def test_reference_cache_serves_identical_logps(tmp_path):
    """Without sync, cached reference log-probs equal freshly computed ones on the second epoch."""
    module = tiny_dpo(cache_ref_logps=True)
    rows = make_pair_batches(1)[0].rows()
    first = module.ref_logps(rows)
    assert module.reference.rows_cached == 4
    with torch.no_grad():
        next(module.ref.parameters()).add_(1.0)  # a changed reference would now give other log-probs ...
    second = module.ref_logps(rows)  # ... but the cache serves the stored ones
    torch.testing.assert_close(second.logps, first.logps, rtol=0, atol=0)
    assert not torch.equal(module.forward_logps(module.ref, rows).logps, first.logps)
