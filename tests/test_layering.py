"""Dependencies point one way: data_prep uses fer_keras's data core, never the reverse; bench uses export."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module,forbidden", [
    ("fer_keras.data.readers", "data_prep"),
    ("fer_keras.data.splits", "data_prep"),
    ("fer_keras.export.run_export", "fer_keras.bench"),
])
def test_module_does_not_import(module, forbidden):
    code = f"import sys, {module}\nassert not [m for m in sys.modules if m.split('.')[:{forbidden.count('.') + 1}] " \
           f"== {forbidden.split('.')!r}], sorted(sys.modules)\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
