"""Host memory reuse for training on the CPU.

PyTorch's CPU tensors come straight from malloc. glibc serves the large ones (activations,
logits, the embedding's gradient) with fresh mmap'ed pages and gives them back to the kernel on
free, so every PPO phase faults its working set in again, page by page: on the demo's 135M model
about 1.5 GB per iteration, 0.6-2.5 s of a 20 s PPO iteration (measured with getrusage). Told to
keep freed memory, malloc reuses it and the faults stop after the first iterations, for a peak
resident size a few percent higher (fragmentation). GPU runs keep their tensors in PyTorch's
caching allocator and need none of this.
"""

from __future__ import annotations

import ctypes
import sys

_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
_M_MMAP_MAX = -4
_kept = False


def keep_freed_memory() -> bool:
    """Make glibc's malloc serve every size from its heap (no mmap) and never trim the heap.
    Process-wide and irreversible; a no-op returning False off glibc."""
    global _kept
    if _kept:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    # mallopt returns 1 on success. Threads other than the main one allocate from their own
    # arenas, which still fall back to mmap for requests larger than an arena can hold.
    _kept = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    return _kept
