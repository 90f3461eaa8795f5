"""What a new user meets first on the console: help text, typo hints, quiet TensorFlow, progress."""

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fer_keras.console import progress_verbosity
from fer_keras.train import cli as train_cli

ROOT = Path(__file__).resolve().parent.parent
#: What TensorFlow writes to stderr while it loads (this build): never a user's concern by default.
TF_NOISE = ("oneDNN", "absl::InitializeLog", "cpu_feature_guard")


def test_train_help_lists_choices_and_real_defaults(capsys):
    with pytest.raises(SystemExit):
        train_cli.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "--balance {none,simple,conservative}" in text and "--pipeline {tfdata,legacy}" in text
    assert "(default: conservative)" in text and "--cache {true,false}" in text
    assert "--data-root DATA_ROOT folder holding the datasets (default: data)" in text
    assert "(default: {})" in text and "--verbose" in text
    assert "PydanticUndefined" not in text and "PosixPath" not in text
    assert "--tta-zoom {true,false} evaluation: also average those of 10% zooms in and out" in text  # % escaped


def test_predict_help_names_the_test_time_views(capsys):
    from fer_keras.predict import cli as predict_cli

    with pytest.raises(SystemExit):
        predict_cli.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--tta {none,flip,zoom,flip+zoom}" in text and "10% zooms in and out (zoom)" in text


@pytest.mark.parametrize(("argv", "hint"), [
    (["--balanse", "simple"], "--balanse: did you mean --balance?"),
    (["--limit=5", "--epoch", "2", "--seeed=1"], "--seeed: did you mean --seed?"),  # abbreviations still work
])
def test_an_unknown_flag_suggests_the_closest(capsys, argv, hint):
    with pytest.raises(SystemExit) as exit_:
        train_cli.main(argv)
    assert exit_.value.code == 2
    assert hint in capsys.readouterr().err


def test_a_bad_choice_lists_the_choices(capsys):
    with pytest.raises(SystemExit):
        train_cli.main(["--balance", "simpel"])
    assert "choose from 'none', 'simple', 'conservative'" in capsys.readouterr().err


def test_every_command_takes_verbose_and_suggests_flags(capsys):
    from fer_keras.report.__main__ import main as report_main

    with pytest.raises(SystemExit):
        report_main(["--run", "x", "--paper-cvs", "p.csv"])
    assert "--paper-cvs: did you mean --paper-csv?" in capsys.readouterr().err


def test_progress_is_a_bar_on_a_terminal_and_a_line_per_epoch_in_a_log(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdout", Terminal())
    assert progress_verbosity() == 1 and progress_verbosity(quiet=True) == 0
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    assert progress_verbosity() == 2


def _import_tensorflow(verbose: bool) -> subprocess.CompletedProcess:
    # oneDNN forced on: TensorFlow then always announces it while loading, on any x86 CPU.
    env = {**{k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}, "PYTHONPATH": str(ROOT),
           "TF_ENABLE_ONEDNN_OPTS": "1"}
    code = f"from fer_keras.console import quiet_tensorflow; quiet_tensorflow({verbose}); import tensorflow"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300,
                          cwd=ROOT)


def test_tensorflow_log_lines_are_hidden_unless_verbose():
    loud = _import_tensorflow(True)
    assert loud.returncode == 0 and [n for n in TF_NOISE if n in loud.stderr], loud.stderr
    quiet = _import_tensorflow(False)
    assert quiet.returncode == 0 and not [n for n in TF_NOISE if n in quiet.stderr], quiet.stderr


def test_converter_chatter_is_hidden_only_in_a_quiet_command(monkeypatch, capfd):
    from fer_keras import console

    def chatter() -> None:
        print("Saved artifact at /tmp/x")
        os.write(2, b"fully_quantize: 0\n")

    monkeypatch.setattr(console, "_quiet", False)  # as in library use (an earlier command may have set it)
    with console.tensorflow_chatter_hidden():  # library use: nothing hidden
        chatter()
    assert "Saved artifact" in capfd.readouterr().out
    monkeypatch.setattr(console, "_quiet", True)
    with console.tensorflow_chatter_hidden():
        chatter()
    seen = capfd.readouterr()
    assert seen.out == "" and seen.err == ""
    with pytest.raises(RuntimeError), console.tensorflow_chatter_hidden():  # failures still surface
        raise RuntimeError("conversion failed")
