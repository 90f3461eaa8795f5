"""``python -m fer_keras.train`` / ``fer-train``: one protocol run from a config plus overrides.

Every RunConfig field is a flag (``--balance simple``, ``--limit-per-class 50``), so a
new protocol knob needs no CLI change.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

import yaml
from pydantic.fields import FieldInfo

from fer_keras.config import RunConfig, load_config
from fer_keras.console import CommandParser, progress_verbosity, quiet_tensorflow
from fer_keras.data.demo import GENERATED_SETS
from fer_keras.data.readers import check_source
from fer_keras.evaluate.report_line import print_run_summary
from fer_keras.runs import check_writable, write_error_line


def _choices(annotation: Any) -> list[str] | None:
    """The allowed values of a Literal field (``Literal[...] | None`` adds ``null``), else None."""
    if get_origin(annotation) is Literal:
        return [str(a) for a in get_args(annotation)]
    if get_origin(annotation) in (Union, UnionType):
        args = get_args(annotation)
        literal = [a for a in args if get_origin(a) is Literal]
        if literal and type(None) in args:
            return [*_choices(literal[0]), "null"]
    return None


def _default_text(field: FieldInfo) -> str:
    """The default as a user would type it: ``data``, ``none``, ``{}``, ``0.0001``."""
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "null" if _choices(field.annotation) else "none"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value) if isinstance(value, Path | str | int | float) else yaml.safe_dump(value,
                                                                                         default_flow_style=True).strip()


def parser() -> argparse.ArgumentParser:
    p = CommandParser(prog="fer-train", description="One protocol run: a config plus overrides (every RunConfig "
                                                    "key is a flag).",
                      usage="%(prog)s [--config YAML] [--force] [--quiet] [--verbose] [--<key> VALUE ...]",
                      epilog="Values are YAML: --lr 1e-3, --cache false, --devices '[/cpu:0, /cpu:1]'.")
    p.add_argument("--config", help="YAML config (configs/protocol.yaml, configs/demo.yaml, ...); "
                                    "its values replace the defaults below, flags replace both")
    p.add_argument("--force", action="store_true", help="delete a finished run of the same id and retrain")
    p.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    for name, field in RunConfig.model_fields.items():
        choices = _choices(field.annotation)
        if field.annotation is bool:
            metavar = "{true,false}"
        else:
            metavar = None if choices else name.upper()
        text = f"{field.description} ".replace("%", "%%") if field.description else ""  # argparse formats help
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, metavar=metavar, choices=choices,
                       help=f"{text}(default: {_default_text(field)})")
    return p


def overrides_from(args: argparse.Namespace) -> dict:
    out = {}
    for name in RunConfig.model_fields:
        value = getattr(args, name)
        if value is not None:
            # YAML scalars, so '1e-4', 'true', '[/cpu:0, /cpu:1]' and '{width: 2}' mean what they say.
            out[name] = yaml.safe_load(value) if name not in ("dataset", "crossdomain", "model") else value
    return out


def check_dataset(cfg: RunConfig) -> None:
    """The dataset's layout or CSV header, checked before TensorFlow is imported (the demo sets are made later)."""
    path = cfg.dataset_dir()
    if path.exists() or cfg.dataset not in GENERATED_SETS:
        check_source(path)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        cfg = load_config(args.config, overrides_from(args))
        check_dataset(cfg)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        check_writable(cfg.out)
    except OSError as err:
        print(f"error: cannot write runs to {cfg.out}: {err.strerror or err}", file=sys.stderr)
        return 2
    # Only now: importing TensorFlow takes 10-30 s, and a mistake above is reported without it in well under 3 s.
    quiet_tensorflow(args.verbose)
    from fer_keras.train.loop import train_run  # here: a bad config or flag fails without importing TensorFlow

    try:
        run_dir = train_run(cfg, force=args.force, verbose=progress_verbosity(args.quiet))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a folder that turned read-only, a full disk: what and where, not a traceback
        print(f"error: {write_error_line(err)}", file=sys.stderr)
        return 2
    print_run_summary(run_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
