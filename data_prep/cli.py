"""The command-line parser every data_prep step starts from, and how a step ends on bad input."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable


def step_parser(module: str, doc: str | None) -> argparse.ArgumentParser:
    """``python -m <module>`` with the module's docstring, line breaks kept, as its help."""
    return argparse.ArgumentParser(prog=f"python -m {module}", description=doc,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


def error_line(err: Exception) -> str:
    """One line for the user: a file-system error names the file and the cause (no errno noise)."""
    if isinstance(err, OSError) and err.strerror:
        where = f"{err.filename}: " if err.filename else ""
        return f"{where}{err.strerror}"
    return str(err)


def run_step(step: Callable[[], object]) -> int:
    """Run a step; bad input or a failed read/write ends in one ``error:`` line (exit 2), never a traceback.

    Bad input raises ``ValueError`` (DatasetError, BadImageError, ImportFormatError, UnknownClassError
    all are) naming the file; an unwritable folder or a full disk raises ``OSError``.
    """
    try:
        step()
    except (ValueError, OSError) as err:
        print(f"error: {error_line(err)}", file=sys.stderr)
        return 2
    return 0
