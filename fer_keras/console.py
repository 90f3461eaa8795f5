"""What every fer_keras command shares on the console: quiet TensorFlow, ``--verbose``, progress, typo hints.

TensorFlow prints C++ log lines (oneDNN, cpu_feature_guard, absl, retracing warnings) that
say nothing about the user's run; each command hides them unless ``--verbose`` is given.
The lines printed while TensorFlow loads come before its logging is set up, so
``TF_CPP_MIN_LOG_LEVEL`` cannot hide them: stderr itself is silenced during the import.
"""

from __future__ import annotations

import argparse
import difflib
import io
import logging
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, redirect_stdout

VERBOSE_HELP = "show TensorFlow's own log lines (oneDNN, absl, retracing warnings; hidden by default)"
#: Set by quiet_tensorflow (a command without --verbose), so tensorflow_chatter_hidden hides too; library use never is.
_quiet = False


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser with ``--verbose`` and a 'did you mean --x?' hint for an unknown flag."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)

    def parse_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                   namespace: argparse.Namespace | None = None) -> argparse.Namespace:
        parsed, unknown = self.parse_known_args(args, namespace)
        if unknown:
            self.error(unknown_message(unknown, list(self._option_string_actions)))
        return parsed


def unknown_message(unknown: Sequence[str], known: Sequence[str]) -> str:
    """argparse's 'unrecognized arguments' plus the closest known flag for each unknown one."""
    hints = []
    for arg in unknown:
        flag = arg.split("=", 1)[0]
        if flag.startswith("--"):
            close = difflib.get_close_matches(flag, [k for k in known if k.startswith("--")], n=1, cutoff=0.6)
            if close:
                hints.append(f"{flag}: did you mean {close[0]}?")
    return "unrecognized arguments: " + " ".join(unknown) + "".join(f"\n  {h}" for h in hints)


@contextmanager
def _stderr_silenced() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null (native code writes there directly, past sys.stderr)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def quiet_tensorflow(verbose: bool = False) -> None:
    """Import TensorFlow now with its log lines hidden (unless ``verbose``); call before anything imports it.

    Warnings and errors that reach Python (exceptions, ``warnings.warn``) are not affected;
    C++ errors still show (level 2 hides only INFO and WARNING).
    """
    global _quiet
    if verbose:
        return
    _quiet = True
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" not in sys.modules:
        with _stderr_silenced():
            import tensorflow  # noqa: F401
    for name in ("tensorflow", "absl"):  # "... triggered tf.function retracing", the TFLite converter's notes
        logging.getLogger(name).setLevel(logging.ERROR)
    # TensorFlow's own Python warnings (deprecations, the converter's "statistics ... not specified").
    warnings.filterwarnings("ignore", module=r"tensorflow(\.|$)")


@contextmanager
def tensorflow_chatter_hidden() -> Iterator[None]:
    """In a quiet command, hide what TensorFlow prints while it works (the converter's 'Saved artifact' dump,
    the quantizer's settings, the interpreter's 'Created ... delegate'); a failure still raises its exception."""
    if not _quiet:
        yield
        return
    with redirect_stdout(io.StringIO()), _stderr_silenced():
        yield


class Notice(UserWarning):
    """A library warning a command prints as its own one-line note (``<prog>: note: ...``), not as Python's
    'file:line: UserWarning' dump; library callers still get an ordinary warning."""


@contextmanager
def notices(prog: str) -> Iterator[None]:
    """Within: :class:`Notice` warnings print as ``<prog>: note: <message>`` on stderr; others as usual."""
    with warnings.catch_warnings():
        shown = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if issubclass(category, Notice):
                print(f"{prog}: note: {message}", file=sys.stderr)
            else:
                shown(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        yield


def progress_verbosity(quiet: bool = False) -> int:
    """Keras ``fit`` verbosity: a per-step bar on a terminal, one line per epoch in a log file, or none."""
    if quiet:
        return 0
    return 1 if sys.stdout.isatty() else 2
