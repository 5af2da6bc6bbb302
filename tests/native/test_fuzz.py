"""A few thousand randomly corrupted files go through the loader (and the accepted ones through a
run) without a crash. In a subprocess: a segfault fails this test rather than killing pytest."""

import re
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_corrupted_files_never_crash_the_loader():
    proc = subprocess.run([sys.executable, "-m", "native.fuzz_loader", "6000", "7"], cwd=TESTS,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"loader crashed (exit {proc.returncode}):\n{proc.stderr[-2000:]}"
    accepted, refused = map(int, re.search(r"accepted=(\d+) refused=(\d+)", proc.stdout).groups())
    assert accepted + refused == 6000
    assert refused > 2000 and accepted > 100  # both the validators and the kernels were exercised
