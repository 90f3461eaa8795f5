"""``python -m fer_keras.train`` / ``fer-train``: one protocol run from a config plus overrides.

Every RunConfig field is a flag (``--balance simple``, ``--limit-per-class 50``), so a
new protocol knob needs no CLI change.
"""

from __future__ import annotations

import argparse
import sys

import yaml

from fer_keras.config import RunConfig, load_config
from fer_keras.runs import check_writable, write_error_line


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fer-train", description=__doc__.splitlines()[0])
    p.add_argument("--config", help="YAML config (configs/protocol.yaml, configs/demo.yaml, ...)")
    p.add_argument("--force", action="store_true", help="delete a finished run of the same id and retrain")
    p.add_argument("--quiet", action="store_true", help="no per-epoch progress lines")
    for name, field in RunConfig.model_fields.items():
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, metavar="VALUE",
                       help=field.description or f"default: {field.default!r}")
    return p


def overrides_from(args: argparse.Namespace) -> dict:
    out = {}
    for name in RunConfig.model_fields:
        value = getattr(args, name)
        if value is not None:
            # YAML scalars, so '1e-4', 'true', '[/cpu:0, /cpu:1]' and '{width: 2}' mean what they say.
            out[name] = yaml.safe_load(value) if name not in ("dataset", "crossdomain", "model") else value
    return out


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        cfg = load_config(args.config, overrides_from(args))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        check_writable(cfg.out)
    except OSError as err:
        print(f"error: cannot write runs to {cfg.out}: {err.strerror or err}", file=sys.stderr)
        return 2
    from fer_keras.evaluate.report_line import print_run_summary
    from fer_keras.train.loop import train_run

    try:
        run_dir = train_run(cfg, force=args.force, verbose=0 if args.quiet else 2)
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
