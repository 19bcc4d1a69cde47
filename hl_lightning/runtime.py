"""One process-wide CPU setting: freed memory is kept for reuse instead of being handed back to the OS.

glibc's ``malloc`` serves every block above its mmap threshold (128 KB, raised on the fly up to 32 MB) with a fresh
``mmap`` and unmaps it on ``free``. A training step allocates and frees large activation and gradient buffers,
so every step faults the same memory in again, page by page, zeroed by the kernel, and the step waits for it.
``retain_freed_memory`` raises glibc's mmap threshold (1 GB) and trim threshold (2 GB), so freed blocks stay in the
heap and the next step reuses them without a fault.

It is a property of the process, not of a module: once set it stays for the process's life and helps any
PyTorch code on the CPU (TRL's trainers too). Not glibc (macOS, musl): nothing happens. ``AlignmentModule``
applies it at ``setup`` on a CPU device unless ``retain_cpu_memory=false``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import platform

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1 << 30  # blocks up to 1 GB come from the heap
TRIM_THRESHOLD = (1 << 31) - 1  # up to 2 GB of free heap top is kept


@functools.cache
def retain_freed_memory() -> bool:
    """Keep freed heap memory for reuse (glibc only; once per process). True if the setting took effect."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
