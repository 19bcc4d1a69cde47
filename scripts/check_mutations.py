"""Break each rule by hand, run the tests that must catch it, report whether they do, restore the source.

One mutation per rule that a docstring of an objective (``hl_lightning/objectives``) or of an objective module
(``hl_lightning/modules/{dpo,ipo,simpo,kto,grpo,paired}.py``) states about its inputs: which rows are chosen,
which labels desirable, the sign and scaling of advantages, the KL estimate's rows, reduction and floor, the
reference the ratio is taken against, the options passed on; plus the reference-sync and LoRA bugs. Each mutation
names the tests that pin its rule; a mutation they do not catch is reported as MISSED (exit status 1).

Run alone (it runs pytest once per mutation, stopping at the first failing test):
    .venv/bin/python scripts/check_mutations.py [--dry-run] [WORD ...]
WORD: only the mutations whose name contains one of these words (e.g. ``KTO``); ``--dry-run`` only checks that
every mutation's text is found once in its file (no tests run).
"""

import pathlib
import subprocess
import sys
from typing import NamedTuple


class Mutation(NamedTuple):
    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


OBJ = "hl_lightning/objectives/"
MOD = "hl_lightning/modules/"
DPO, IPO, SIMPO, KTO, GRPO = (f"tests/objectives/test_{n}.py" for n in ("dpo", "ipo", "simpo", "kto", "grpo"))
CLIP, SAMPLING = "tests/objectives/test_logratio.py", "tests/objectives/test_sampling.py"
FEEDS = "tests/modules/test_objective_modules.py::test_"
PINS = (
    "tests/modules/test_stated_rules.py",
    f"{FEEDS}paired_modules_feed_chosen_as_chosen_with_their_clip",
    f"{FEEDS}simpo_feeds_chosen_as_chosen_without_a_reference",
    f"{FEEDS}kto_feeds_desirable_labels_and_the_kl_rows",
    f"{FEEDS}grpo_feeds_the_batch_advantages_with_their_sign",
)
SYNC = (
    "tests/modules/test_objective_modules.py",
    "tests/test_ref_sync.py",
    "tests/modules/test_lora.py",
    "tests/test_configs.py::test_config_has_exactly_the_intended_clip_and_callback[smoke/humanline_dpo.yaml]",
)
DPO_LOSS = "-F.logsigmoid(self.beta * (r_chosen - r_rejected)).mean()"
IPO_LOSS = "(r_chosen - r_rejected - 1 / (2 * self.beta)).pow(2).mean()"
KTO_D = "self.desirable_weight * (1 - torch.sigmoid(self.beta * (reward - kl)))"
KTO_U = "self.undesirable_weight * (1 - torch.sigmoid(self.beta * (kl - reward)))"
KTO_REWARD = "reward = masked_sum(token_log_ratio(policy_logps, ref_logps, mask, self.clip), mask)"
SURROGATE = "per_token = -torch.min(adv * ratio, adv * ratio.clamp(low, high))"
K3 = "log_ratio_ref = token_log_ratio(policy_logps, ref_logps, mask, None)"
KL_SUM = "rewards = token_log_ratio(policy.logps, ref.logps, policy.mask, self.clip).sum(-1)"
KL_ROWS = "torch.tensor(float(len(rewards)), device=rewards.device)"
SEQ = "reward = masked_sum(token_log_ratio(policy_logps, ref_logps, mask, clip), mask)"
IPO_MEAN = "reward / mask.sum(-1).clamp(min=1) if mean"
HALOS_IPO = "(token_log_ratio(policy_logps, ref_logps, mask, clip) != 0).sum(-1).clamp(min=1)"
MARGIN = "self.beta * (a_chosen - a_rejected)"
KL_REDUCE = 'self.trainer.strategy.reduce(total, reduce_op="sum") if self._trainer is not None else total'
GRPO_LOSS = "GRPOLoss(epsilon=epsilon, kl_beta=kl_beta, clip=self.clip)"

# fmt: off
ROWS = [  # (rule broken, file, text, its replacement, the tests that must catch it)
    # --- objectives: pairs (DPO, IPO) -----------------------------------------------------------------------------
    ("pairs: log-ratio taken as reference minus policy", f"{OBJ}pairs.py", SEQ,
     SEQ.replace("policy_logps, ref_logps", "ref_logps, policy_logps"), (DPO, IPO)),
    ("pairs: clip not applied per token", f"{OBJ}pairs.py", SEQ, SEQ.replace("clip)", "None)"), (DPO, IPO)),
    ("pairs: chosen and rejected swapped in the loss", f"{OBJ}pairs.py", "self.pair_loss(r_chosen, r_rejected)",
     "self.pair_loss(r_rejected, r_chosen)", (DPO, IPO)),
    ("IPO: HALOs' denominator (tokens with a non-zero log-ratio)", f"{OBJ}pairs.py", IPO_MEAN,
     f"reward / {HALOS_IPO} if mean", (IPO,)),
    ("IPO: an empty row divides by zero", f"{OBJ}pairs.py", IPO_MEAN, "reward / mask.sum(-1) if mean", (IPO,)),
    # --- objectives: DPO, IPO ---------------------------------------------------------------------------------
    ("DPO: beta dropped", f"{OBJ}dpo.py", DPO_LOSS, DPO_LOSS.replace("self.beta * ", ""), (DPO,)),
    ("DPO: sum over pairs, not mean", f"{OBJ}dpo.py", DPO_LOSS, DPO_LOSS.replace("mean()", "sum()"), (DPO,)),
    ("DPO: loss sign flipped", f"{OBJ}dpo.py", DPO_LOSS, DPO_LOSS[1:], (DPO,)),
    ("DPO: length-normalised", f"{OBJ}dpo.py", "    def pair_loss(", "    length_normalised = True\n    def pair_loss(",
     (DPO,)),
    ("IPO: target 1 / beta", f"{OBJ}ipo.py", IPO_LOSS, IPO_LOSS.replace("(2 * self.beta)", "self.beta"), (IPO,)),
    ("IPO: rejected minus chosen", f"{OBJ}ipo.py", IPO_LOSS,
     IPO_LOSS.replace("r_chosen - r_rejected", "r_rejected - r_chosen"), (IPO,)),
    ("IPO: absolute, not squared", f"{OBJ}ipo.py", IPO_LOSS, IPO_LOSS.replace("pow(2)", "abs()"), (IPO,)),
    ("IPO: not length-normalised", f"{OBJ}ipo.py", "length_normalised = True", "length_normalised = False", (IPO,)),
    # --- objectives: SimPO ------------------------------------------------------------------------------------
    ("SimPO: chosen and rejected swapped", f"{OBJ}simpo.py", MARGIN, "self.beta * (a_rejected - a_chosen)", (SIMPO,)),
    ("SimPO: beta dropped", f"{OBJ}simpo.py", MARGIN, "(a_chosen - a_rejected)", (SIMPO,)),
    ("SimPO: gamma added", f"{OBJ}simpo.py", "margin - self.gamma", "margin + self.gamma", (SIMPO,)),
    ("SimPO: not length-normalised", f"{OBJ}simpo.py", "sum_chosen / chosen_mask.sum(-1).clamp(min=1)", "sum_chosen",
     (SIMPO,)),
    ("SimPO: an empty row divides by zero", f"{OBJ}simpo.py", "/ chosen_mask.sum(-1).clamp(min=1)",
     "/ chosen_mask.sum(-1)", (SIMPO,)),
    ("SimPO: padding summed", f"{OBJ}simpo.py", "masked_sum(policy_chosen_logps, chosen_mask)",
     "policy_chosen_logps.sum(-1)", (SIMPO,)),
    ("SimPO: sum over pairs, not mean", f"{OBJ}simpo.py", "(margin - self.gamma).mean()", "(margin - self.gamma).sum()",
     (SIMPO,)),
    # --- objectives: KTO --------------------------------------------------------------------------------------
    ("KTO loss: desirable labels inverted", f"{OBJ}kto.py", "            desirable,\n", "            ~desirable,\n",
     (KTO,)),
    ("KTO loss: w_U on desirable items", f"{OBJ}kto.py", KTO_D, KTO_D.replace("desirable_weight", "undesirable_weight"),
     (KTO,)),
    ("KTO loss: z0 not subtracted", f"{OBJ}kto.py", KTO_D, KTO_D.replace("(reward - kl)", "reward"), (KTO,)),
    ("KTO loss: undesirable sign flipped", f"{OBJ}kto.py", KTO_U, KTO_U.replace("kl - reward", "reward - kl"), (KTO,)),
    ("KTO loss: beta dropped", f"{OBJ}kto.py", KTO_U, KTO_U.replace("self.beta * ", ""), (KTO,)),
    ("KTO loss: z0 keeps its gradient", f"{OBJ}kto.py", "device=reward.device).detach()", "device=reward.device)",
     (KTO,)),
    ("KTO loss: length-normalised", f"{OBJ}kto.py", KTO_REWARD, f"{KTO_REWARD} / mask.sum(-1).clamp(min=1)", (KTO,)),
    ("KTO loss: clip not applied", f"{OBJ}kto.py", KTO_REWARD, KTO_REWARD.replace("self.clip", "None"), (KTO,)),
    ("KTO loss: sum over items, not mean", f"{OBJ}kto.py", "loss = losses.mean()", "loss = losses.sum()", (KTO,)),
    # --- objectives: GRPO -------------------------------------------------------------------------------------
    ("GRPO: old_logps not the anchor", f"{OBJ}grpo.py", "ref_logps if old_logps is None else old_logps", "ref_logps",
     (GRPO,)),
    ("GRPO: advantages' sign flipped", f"{OBJ}grpo.py", SURROGATE, SURROGATE.replace("-torch", "torch"), (GRPO,)),
    ("GRPO: PPO clamp dropped", f"{OBJ}grpo.py", SURROGATE, SURROGATE.replace(".clamp(low, high)", ""), (GRPO,)),
    ("GRPO: optimistic max, not min", f"{OBJ}grpo.py", SURROGATE, SURROGATE.replace("min", "max"), (GRPO,)),
    ("GRPO: KL against the anchor", f"{OBJ}grpo.py", K3, K3.replace("ref_logps", "anchor"), (GRPO,)),
    ("GRPO: KL clipped", f"{OBJ}grpo.py", K3, K3.replace("None", "self.clip"), (GRPO,)),
    ("GRPO: k3 the wrong way round", f"{OBJ}grpo.py", "torch.exp(-log_ratio_ref) + log_ratio_ref - 1",
     "torch.exp(log_ratio_ref) - log_ratio_ref - 1", (GRPO,)),
    ("GRPO: kl_beta dropped", f"{OBJ}grpo.py", "per_token + self.kl_beta * k3", "per_token + k3", (GRPO,)),
    ("GRPO: per-sequence mean, not token mean", f"{OBJ}grpo.py", "loss = masked_mean(per_token, mask)",
     "loss = (torch.where(mask, per_token, 0.0).sum(-1) / mask.sum(-1).clamp(min=1)).mean()", (GRPO,)),
    ("GRPO: clip not gating the ratio", f"{OBJ}grpo.py", "token_log_ratio(policy_logps, anchor, mask, self.clip)",
     "token_log_ratio(policy_logps, anchor, mask, None)", (GRPO,)),
    ("GRPO advantages: sample std", f"{OBJ}grpo.py", "centred**2) / counts)", "centred**2) / (counts - 1))", (GRPO,)),
    ("GRPO advantages: eps not added", f"{OBJ}grpo.py", "centred / (std[group] + eps)",
     "centred / std[group].clamp(min=eps)", (GRPO,)),
    ("GRPO advantages: not centred", f"{OBJ}grpo.py", "centred = shifted - mean[group]", "centred = shifted", (GRPO,)),
    # --- objectives: the humanline clip and humanline sampling ------------------------------------------------
    ("clip: symmetric bounds", f"{OBJ}logratio.py", "clamp(self.log_eps_P, self.log_eps_R)",
     "clamp(-self.log_eps_R, self.log_eps_R)", (CLIP,)),
    ("clip: padding not zeroed", f"{OBJ}logratio.py", "torch.where(mask, policy_logps - ref_logps, 0.0)",
     "policy_logps - ref_logps", (CLIP,)),
    ("clip: a token at a bound counted as clipped", f"{OBJ}logratio.py",
     "(log_ratio >= self.log_eps_P) & (log_ratio <= self.log_eps_R)",
     "(log_ratio > self.log_eps_P) & (log_ratio < self.log_eps_R)", (CLIP,)),
    ("sampling: a rejected token zeroed, not detached", f"{OBJ}sampling.py",
     "torch.where(kept, log_ratio, log_ratio.detach())", "torch.where(kept, log_ratio, 0.0)", (SAMPLING,)),
    ("sampling: M over padding too", f"{OBJ}sampling.py", "d[mask].max().exp(), (-d[mask]).max().exp()",
     "d.max().exp(), (-d).max().exp()", (SAMPLING,)),
    ("sampling: one-sided", f"{OBJ}sampling.py", " | ((-d).exp() < m_r * b_r.to(d.device))", "", (SAMPLING,)),
    ("sampling: deterministic limit without 1 + gamma", f"{OBJ}sampling.py", "self.gamma_P / (1 + self.gamma_P)",
     "self.gamma_P", (SAMPLING,)),
    ("sampling: Beta draws U ** gamma", f"{OBJ}sampling.py", "u[0] ** (1 / self.gamma_P)", "u[0] ** self.gamma_P",
     (SAMPLING,)),
    # --- modules --------------------------------------------------------------------------------------------
    ("DPO rows swapped in the module", f"{MOD}paired.py", "chosen, rejected, ref_chosen, ref_rejected = self",
     "rejected, chosen, ref_rejected, ref_chosen = self", PINS),
    ("paired module: the ratio taken against the policy", f"{MOD}paired.py", "ref_chosen_logps=ref_chosen.logps",
     "ref_chosen_logps=chosen.logps.detach()", PINS),
    ("clip dropped by a module (DPO)", f"{MOD}dpo.py", "DPOLoss(beta=beta, clip=self.clip)", "DPOLoss(beta=beta)",
     PINS),
    ("DPO module: beta dropped", f"{MOD}dpo.py", "DPOLoss(beta=beta, clip=self.clip)", "DPOLoss(clip=self.clip)",
     PINS),
    ("IPO module: clip dropped", f"{MOD}ipo.py", "IPOLoss(beta=beta, clip=self.clip)", "IPOLoss(beta=beta)", PINS),
    ("IPO module: beta dropped", f"{MOD}ipo.py", "IPOLoss(beta=beta, clip=self.clip)", "IPOLoss(clip=self.clip)",
     PINS),
    ("SimPO module: rows swapped", f"{MOD}simpo.py", "chosen, rejected, _, _ = self", "rejected, chosen, _, _ = self",
     PINS),
    ("SimPO module: beta and gamma dropped", f"{MOD}simpo.py", "SimPOLoss(beta=beta, gamma=gamma)", "SimPOLoss()",
     PINS),
    ("SimPO module: a reference kept", f"{MOD}simpo.py", "needs_reference = False", "needs_reference = True", PINS),
    ("KTO labels inverted in the module", f"{MOD}kto.py", "desirable=batch.desirable, kl=z0",
     "desirable=~batch.desirable, kl=z0", PINS),
    ("KTO module: KL estimate on the items, not the KL rows", f"{MOD}kto.py", "self.kl_mean(kl, ref_kl)",
     "self.kl_mean(items, ref_items)", PINS),
    ("KTO module: KL estimate not floored", f"{MOD}kto.py", "self.kl_mean(kl, ref_kl).clamp(min=0)",
     "self.kl_mean(kl, ref_kl)", PINS),
    ("KTO module: KL rows not clipped", f"{MOD}kto.py", KL_SUM, KL_SUM.replace("self.clip", "None"), PINS),
    ("KTO module: KL rows averaged, not summed", f"{MOD}kto.py", KL_SUM, KL_SUM.replace("sum(-1)", "mean(-1)"), PINS),
    ("KTO module: KL divided by HALOs' non-zero rows", f"{MOD}kto.py", KL_ROWS,
     "(rewards != 0).sum().to(rewards.dtype)", PINS),
    ("KTO module: KL of this rank only", f"{MOD}kto.py", KL_REDUCE, "total", PINS),
    ("KTO module: weights swapped", f"{MOD}kto.py", "desirable_weight=desirable_weight, undesirable_weight=undesirable",
     "desirable_weight=undesirable_weight, undesirable_weight=desirable", PINS),
    ("KTO module: beta dropped", f"{MOD}kto.py", "beta=beta, desirable_weight=", "desirable_weight=", PINS),
    ("KTO module: clip dropped", f"{MOD}kto.py", "undesirable_weight=undesirable_weight, clip=self.clip",
     "undesirable_weight=undesirable_weight", PINS),
    ("KTO module: the items' ratio taken against the policy", f"{MOD}kto.py", "ref_logps=ref_items.logps",
     "ref_logps=items.logps.detach()", PINS),
    ("GRPO advantages negated in the module", f"{MOD}grpo.py", "advantages=batch.advantages",
     "advantages=-batch.advantages", PINS),
    ("GRPO module: the ratio taken against the policy", f"{MOD}grpo.py", "ref_logps=ref.logps,",
     "ref_logps=policy.logps.detach(),", PINS),
    ("GRPO module: epsilon dropped", f"{MOD}grpo.py", GRPO_LOSS, GRPO_LOSS.replace("epsilon=epsilon, ", ""), PINS),
    ("GRPO module: kl_beta dropped", f"{MOD}grpo.py", GRPO_LOSS, GRPO_LOSS.replace("kl_beta=kl_beta, ", ""), PINS),
    ("GRPO module: clip dropped", f"{MOD}grpo.py", GRPO_LOSS, GRPO_LOSS.replace(", clip=self.clip", ""), PINS),
    ("GRPO module: sample std of the rewards", f"{MOD}grpo.py", "rewards.std(unbiased=False)", "rewards.std()", PINS),
    # --- reference sync and LoRA ------------------------------------------------------------------------------
    ("sync made a no-op", f"{MOD}reference.py", "copy_by_value(*self._sync_pairs(policy))",
     "self._sync_pairs(policy)", SYNC),
    ("LoRA reference forward on the trainable adapter", f"{MOD}lora.py", "set_adapter(REFERENCE, inference_mode=True)",
     "set_adapter(TRAINABLE, inference_mode=True)", SYNC),
    ("LoRA frozen reference with the adapter left on", f"{MOD}lora.py", "with peft.disable_adapter():",
     "with torch.no_grad():", SYNC),
    ("LoRA sync made a no-op", f"{MOD}lora.py", "copy_by_value(list(reference), list(trainable))",
     "pass", SYNC),
]
# fmt: on
MUTATIONS = [Mutation(*row) for row in ROWS]


def run(mutation: Mutation) -> str | None:
    """The first test that fails with ``mutation`` applied (None: MISSED); the source is restored after."""
    source = pathlib.Path(mutation.path)
    original = source.read_text()
    source.write_text(original.replace(mutation.old, mutation.new))
    try:
        out = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "--tb=no", *mutation.tests],
            capture_output=True,
            text=True,
            env={"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
        )
    finally:
        source.write_text(original)
    failed = [line.split(" ")[1] for line in out.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
    return failed[0] if failed else None


def main(argv: list[str]) -> int:
    dry = "--dry-run" in argv
    words = [a for a in argv if a != "--dry-run"]
    chosen = [m for m in MUTATIONS if not words or any(word in m.name for word in words)]
    for m in chosen:
        count = pathlib.Path(m.path).read_text().count(m.old)
        assert count == 1 and m.old != m.new, f"{m.name}: the text to mutate is found {count} times in {m.path}"
    if dry:
        print(f"{len(chosen)} mutations, each found once")
        return 0
    missed = []
    for m in chosen:
        caught = run(m)
        print(f"{'caught' if caught else 'MISSED'}  {m.name}" + (f"  ({caught})" if caught else ""), flush=True)
        missed += [] if caught else [m.name]
    print(f"{len(chosen) - len(missed)} of {len(chosen)} caught" + (f"; missed: {missed}" if missed else ""))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
