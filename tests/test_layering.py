"""Dependencies point one way: data_prep uses fer_keras's data core, never the reverse; bench uses export."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize("module,forbidden", [
    ("fer_keras.data.readers", "data_prep"),
    ("fer_keras.data.splits", "data_prep"),
    ("fer_keras.predict.predictor", "data_prep"),
    ("fer_keras.export.run_export", "fer_keras.bench"),
])
def test_module_does_not_import(module, forbidden):
    code = f"import sys, {module}\nassert not [m for m in sys.modules if m.split('.')[:{forbidden.count('.') + 1}] " \
           f"== {forbidden.split('.')!r}], sorted(sys.modules)\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def _imported_modules(path: Path) -> set[str]:
    """Top-level package names every import statement of a file names, wherever it sits (module or function)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_fer_keras_never_imports_data_prep():
    # data_prep is the tool layer above fer_keras; shared code (faces, image decoding) lives in fer_keras.
    package = Path(__file__).resolve().parent.parent / "fer_keras"
    offenders = [str(p.relative_to(package.parent)) for p in sorted(package.rglob("*.py"))
                 if "data_prep" in _imported_modules(p)]
    assert not offenders, f"fer_keras modules importing data_prep: {offenders}"


@pytest.mark.parametrize("what,code", [
    ("validating a config", "from fer_keras.config import make_config\nmake_config({'model': 'resnet18'})"),
    ("checking model options", (
        "from fer_keras.config import ConfigError, make_config\n"
        "assert make_config({'model': 'esr', 'model_options': {'branches': 2}}).resolved_options()['branches'] == 2\n"
        "try:\n    make_config({'model': 'esr', 'model_options': {'branch': 2}})\n"
        "except ConfigError:\n    pass\nelse:\n    raise AssertionError('a misspelt option passed')")),
    ("listing the models (make models)", (
        "from fer_keras.models.__main__ import main\nmain([])")),
])
def test_runs_without_tensorflow(what, code):
    """Config and option checks and `make models` read the catalog only (builders load on first build), so
    they answer in well under a second and never import TensorFlow."""
    check = f"assert not {{'tensorflow', 'keras'}} & set(sys.modules), '{what} imported TensorFlow'"
    code = f"import sys\n{code}\n{check}\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
