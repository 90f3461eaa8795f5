"""The tests' own generated data is the same in every process, so a failure can be reproduced."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from conftest import make_folder_dataset

_DIGEST = """
import hashlib, sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from conftest import make_folder_dataset
root = make_folder_dataset(Path({root!r}), {{"happy": 2, "sad": 2}}, size=8)
print(hashlib.sha256(b"".join(p.read_bytes() for p in sorted(root.rglob("*.png")))).hexdigest())
"""


def _digest(root: Path) -> str:
    return hashlib.sha256(b"".join(p.read_bytes() for p in sorted(root.rglob("*.png")))).hexdigest()


def test_folder_datasets_do_not_depend_on_the_process_hash_seed(tmp_path):
    here = _digest(make_folder_dataset(tmp_path / "here", {"happy": 2, "sad": 2}, size=8))
    digests = []
    for seed in ("1", "2"):  # str hashes differ between these two interpreters
        code = _DIGEST.format(tests=str(Path(__file__).parent), root=str(tmp_path / f"h{seed}"))
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONHASHSEED": seed}, check=True)
        digests.append(done.stdout.strip())
    assert digests == [here, here]
