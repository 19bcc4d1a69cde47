"""Every rule an objective module's docstring states about what it feeds its loss, pinned with non-default options.

The modules run on a tiny model whose one forward is replaced by the fake of ``test_objective_modules`` (log-probs
that depend on the model and the token ids). With options that differ from the loss objects' defaults (beta, the
KTO weights, epsilon, kl_beta, gamma), a module that dropped or swapped an option fails. The KTO tests pin the KL
estimate: its rows (the batch's mismatched ``kl`` rows), its per-row sum of clipped log-ratios, its mean over all
rows of all ranks (not HALOs' rows whose sum is non-zero), and its floor at 0. ``scripts/check_mutations.py`` breaks
each rule by hand and checks that these tests catch it.
"""

from types import SimpleNamespace

import pytest
import torch

from hl_lightning.data import PreferenceDataModule
from hl_lightning.models.logprobs import TokenLogps
from hl_lightning.modules import KTOModule, SimPOModule
from hl_lightning.objectives import DPOLoss, GRPOLoss, IPOLoss, KTOLoss, SimPOLoss
from tests.modules.test_objective_modules import CLIP, assert_same, build, fake_logps, first_batch, pair_args, patched

F64 = torch.float64


@pytest.mark.parametrize(
    ("name", "options", "loss"),
    [("dpo", {"beta": 0.7}, DPOLoss(beta=0.7, clip=CLIP)), ("ipo", {"beta": 0.3}, IPOLoss(beta=0.3, clip=CLIP))],
)
def test_paired_modules_pass_their_options(name, options, loss):
    module, data = build(name, **options)
    batch = first_batch(data)
    assert_same(patched(module).compute_loss(batch), loss(**pair_args(module, batch)))


def test_simpo_passes_beta_and_gamma():
    module = patched(SimPOModule(model="tiny-random", beta=3.0, gamma=0.4))
    batch = first_batch(
        PreferenceDataModule(tokenizer="tiny-random", batch_size=2, max_length=64, max_prompt_length=48)
    )
    assert_same(module.compute_loss(batch), SimPOLoss(beta=3.0, gamma=0.4)(**pair_args(module, batch, ref=False)))


def test_grpo_passes_epsilon_kl_beta_and_the_clip():
    module, data = build("grpo", epsilon=0.1, kl_beta=0.05)
    batch = first_batch(data)
    policy, ref = fake_logps(module, module.policy, batch.rows), fake_logps(module, module.ref, batch.rows)
    expected = GRPOLoss(epsilon=0.1, kl_beta=0.05, clip=CLIP)(
        policy_logps=policy.logps, ref_logps=ref.logps, mask=policy.mask, advantages=batch.advantages
    )
    assert_same(patched(module).compute_loss(batch), expected)


class KLSpy:
    """Stands in for ``KTOModule.kl_mean``: records the rows it is given and returns ``value``."""

    def __init__(self, value: float) -> None:
        self.value, self.calls = value, []

    def __call__(self, policy: TokenLogps, ref: TokenLogps) -> torch.Tensor:
        self.calls.append((policy, ref))
        return torch.tensor(self.value, dtype=F64)


def _kto(value: float):
    module, data = build("kto", beta=0.3, desirable_weight=1.3, undesirable_weight=0.6)
    batch = first_batch(data)
    module.kl_mean = spy = KLSpy(value)
    out = patched(module).compute_loss(batch)
    items, ref_items = fake_logps(module, module.policy, batch.items), fake_logps(module, module.ref, batch.items)
    loss = KTOLoss(beta=0.3, desirable_weight=1.3, undesirable_weight=0.6, clip=CLIP)
    args = dict(policy_logps=items.logps, ref_logps=ref_items.logps, mask=items.mask, desirable=batch.desirable)
    return module, batch, spy, out, loss, args


def test_kto_feeds_its_options_and_the_kl_rows_to_the_kl_estimate():
    module, batch, spy, out, loss, args = _kto(0.05)
    assert_same(out, loss(**args, kl=torch.tensor(0.05, dtype=F64)))
    ((policy, ref),) = spy.calls
    for got, model in ((policy, module.policy), (ref, module.ref)):  # the mismatched (prompt i, completion i+1) rows
        expected = fake_logps(module, model, batch.kl)
        assert torch.equal(got.logps, expected.logps) and torch.equal(got.mask, expected.mask)


def test_kto_floors_the_kl_estimate_at_zero():
    _, _, _, out, loss, args = _kto(-0.5)
    assert out.metrics["kl"].item() == 0.0
    assert_same(out, loss(**args, kl=torch.tensor(0.0, dtype=F64)))


def _kl_rows() -> tuple[TokenLogps, TokenLogps]:
    """Three KL rows (the third token of rows 0 and 2 is padding), clip [-0.3, 0.3]:

    row 0: D = [0.5, 0.5]        -> clipped [0.3, 0.3], sum 0.6 (unclipped 1.0)
    row 1: D = [0.0, 0.0, 0.0]   -> sum 0
    row 2: D = [-0.1, -0.1]      -> sum -0.2

    Mean over all rows 0.4 / 3. HALOs' mean over the rows whose sum is non-zero would be 0.4 / 2, a per-row mean
    instead of the sum (0.3 + 0 - 0.1) / 3, no clip (1.0 - 0.2) / 3, the padding (D = 9, clipped 0.3) more.
    """
    policy = torch.tensor([[-1.0, -1.0, 9.0], [-2.0, -2.0, -2.0], [-1.1, -1.1, 9.0]], dtype=F64)
    ref = torch.tensor([[-1.5, -1.5, 0.0], [-2.0, -2.0, -2.0], [-1.0, -1.0, 0.0]], dtype=F64)
    mask = torch.tensor([[True, True, False], [True, True, True], [True, True, False]])
    return TokenLogps(policy, mask), TokenLogps(ref, mask)


def test_kto_kl_estimate_sums_clipped_rows_and_divides_by_all_rows():
    module = KTOModule(model="tiny-random", clip=CLIP)
    assert module.kl_mean(*_kl_rows()).item() == pytest.approx(0.4 / 3, rel=1e-12)


def test_kto_kl_estimate_averages_over_the_rows_of_every_rank():
    module = KTOModule(model="tiny-random", clip=CLIP)

    def reduce(total: torch.Tensor, reduce_op: str) -> torch.Tensor:
        assert reduce_op == "sum"
        return total + torch.tensor([0.9, 3.0], dtype=total.dtype)  # another rank: 3 rows summing to 0.9

    module._trainer = SimpleNamespace(strategy=SimpleNamespace(reduce=reduce))
    assert module.kl_mean(*_kl_rows()).item() == pytest.approx((0.4 + 0.9) / 6, rel=1e-12)
