"""``retain_freed_memory``: freed blocks are reused without page faults, and modules apply it on a CPU fit."""

import subprocess
import sys

import pytest

from hl_lightning import runtime
from hl_lightning.data import PreferenceDataModule
from hl_lightning.modules import DPOModule
from tests.helpers import trainer

# A fresh process (the setting is process-wide and cannot be undone) allocates 64 MB with libc's malloc, touches
# every page, frees it, allocates 64 MB again and touches it: it prints the minor page faults of the second touch.
# Default glibc: the first block was unmapped on free, so all 16,384 pages of 4 KB fault in again. Retained: the
# second block is the first one, still mapped: (almost) no fault.
REUSE = """
import ctypes, ctypes.util, resource, sys
if sys.argv[1] == "retain":
    from hl_lightning.runtime import retain_freed_memory
    assert retain_freed_memory()
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
n = 64 << 20
block = libc.malloc(n); ctypes.memset(block, 1, n); libc.free(block)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
block = libc.malloc(n); ctypes.memset(block, 1, n)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def second_touch_faults(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", REUSE, mode], capture_output=True, text=True, check=True)
    return int(done.stdout.split()[-1])


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or runtime.platform.libc_ver()[0] != "glibc", reason="the setting is glibc's"
)
def test_a_freed_block_is_reused_without_faulting_its_pages_in_again():
    assert second_touch_faults("default") > 8000  # 16,384 pages, fewer with transparent huge pages
    assert second_touch_faults("retain") < 100


def test_it_does_nothing_outside_glibc(monkeypatch):
    monkeypatch.setattr(runtime.platform, "libc_ver", lambda: ("musl", "1.2"))
    assert runtime.retain_freed_memory.__wrapped__() is False


@pytest.mark.parametrize("retain", [True, False])
def test_a_cpu_fit_applies_it_unless_switched_off(tmp_path, monkeypatch, retain):
    calls = []
    monkeypatch.setattr("hl_lightning.modules.base.retain_freed_memory", lambda: calls.append("retain"))
    data = PreferenceDataModule(tokenizer="tiny-random", batch_size=2, max_length=64, max_prompt_length=48)
    module = DPOModule(model="tiny-random", retain_cpu_memory=retain)
    trainer(1, [], tmp_path, limit_val_batches=0).fit(module, datamodule=data)
    assert calls == (["retain"] if retain else [])
    assert module.hparams.retain_cpu_memory is retain  # in the checkpoint and in MLflow like every option
