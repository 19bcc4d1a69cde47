"""Make each behavioural bug (issues 9 and 14) by hand, run the tests that must catch it, report which do, restore.

Run alone (it runs the module tests once per mutation): .venv/bin/python scripts/check_mutations.py [WORD ...]
"""

import pathlib
import subprocess
import sys

MUTATIONS = [
    (
        "DPO rows swapped in the module",
        "hl_lightning/modules/paired.py",
        "chosen, rejected, ref_chosen, ref_rejected = self.pair_logps(batch)",
        "rejected, chosen, ref_rejected, ref_chosen = self.pair_logps(batch)",
    ),
    (
        "KTO labels inverted in the module",
        "hl_lightning/modules/kto.py",
        "desirable=batch.desirable, kl=z0",
        "desirable=~batch.desirable, kl=z0",
    ),
    (
        "GRPO advantages negated in the module",
        "hl_lightning/modules/grpo.py",
        "advantages=batch.advantages\n",
        "advantages=-batch.advantages\n",
    ),
    (
        "sync made a no-op",
        "hl_lightning/modules/reference.py",
        "        copy_by_value(*self._sync_pairs(policy))",
        "        self._sync_pairs(policy)",
    ),
    (
        "clip dropped by a module (DPO)",
        "hl_lightning/modules/dpo.py",
        "DPOLoss(beta=beta, clip=self.clip)",
        "DPOLoss(beta=beta)",
    ),
    (
        "LoRA reference forward on the trainable adapter",
        "hl_lightning/modules/lora.py",
        "peft.set_adapter(REFERENCE, inference_mode=True)",
        "peft.set_adapter(TRAINABLE, inference_mode=True)",
    ),
    (
        "LoRA frozen reference with the adapter left on",
        "hl_lightning/modules/lora.py",
        "with peft.disable_adapter():",
        "with torch.no_grad():",
    ),
    (
        "LoRA sync made a no-op",
        "hl_lightning/modules/lora.py",
        "copy_by_value(list(reference), list(trainable))",
        "pass",
    ),
]
TESTS = [
    "tests/modules/test_objective_modules.py",
    "tests/test_ref_sync.py",
    "tests/modules/test_lora.py",
    "tests/test_configs.py::test_config_has_exactly_the_intended_clip_and_callback[smoke/humanline_dpo.yaml]",
]
only = sys.argv[1:]  # e.g. `LoRA`: only the mutations whose name contains one of these words
for name, path, old, new in (m for m in MUTATIONS if not only or any(word in m[0] for word in only)):
    source = pathlib.Path(path)
    original = source.read_text()
    assert original.count(old) == 1, (name, old)
    source.write_text(original.replace(old, new))
    try:
        out = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--tb=no", *TESTS],
            capture_output=True,
            text=True,
            env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
        )
    finally:
        source.write_text(original)
    failed = [line.split(" ")[1] for line in out.stdout.splitlines() if line.startswith("FAILED")]
    print(f"## {name}: {len(failed)} failing")
    for test in failed:
        print("   ", test)
    print("   ", out.stdout.strip().splitlines()[-1])
