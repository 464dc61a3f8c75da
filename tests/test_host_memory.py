"""rlhf_lite/host_memory.py: freed tensors stay in the process for reuse (no page faults next time)."""

import json
import subprocess
import sys

import pytest

from tests.test_recipes import ROOT

PROBE = """
import json, resource, sys, torch
from rlhf_lite.host_memory import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else False
faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt
x = torch.ones(64 * 2**20 // 4)  # 64 MiB: glibc would mmap it and unmap it on free
del x
before = faults()
x = torch.ones(64 * 2**20 // 4)
print(json.dumps({"kept": kept, "again": keep_freed_memory() if kept else False, "faults": faults() - before}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_a_freed_tensor_is_reused_without_faulting_its_pages_in_again():
    def probe(mode: str) -> dict:
        out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, cwd=ROOT, check=True)
        return json.loads(out.stdout.splitlines()[-1])

    default, kept = probe("default"), probe("keep")
    assert kept["kept"] and kept["again"]  # idempotent
    assert default["faults"] > 10_000  # 16384 pages of 4 KiB faulted in again
    assert kept["faults"] < 1_000
