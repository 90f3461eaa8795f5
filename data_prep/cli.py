"""The command-line parser every data_prep step starts from."""

from __future__ import annotations

import argparse


def step_parser(module: str, doc: str | None) -> argparse.ArgumentParser:
    """``python -m <module>`` with the module's docstring, line breaks kept, as its help."""
    return argparse.ArgumentParser(prog=f"python -m {module}", description=doc,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
