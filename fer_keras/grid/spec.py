"""Grid files: a base config, fixed keys, lists to cross, rules, optional cross-validation.

A grid file is YAML (``yaml.safe_load`` only)::

    base: configs/demo.yaml        # a config file (with its one-level include)
    fixed: {res: 32, epochs: 1}    # RunConfig keys shared by every point
    grid:                          # RunConfig keys -> lists; every combination is a point
      model: [sequential_simple, resnet18]
      pretrain: [scratch, imagenet, vggface]
    exclude:                       # drop points matching every key of a rule (a list = any of)
      - {model: resnet18, balance: simple}
    include:                       # extra sub-grids: the grid with these keys pinned (never excluded)
      - {model: resnet50, pretrain: vggface, res: 224}
    cv: 5                          # optional: k stratified folds per point, run ids get _f<i>
                                   # (grid: {cv_group: [null, '^(S\\d+)_']} adds subject-grouped folds: _grouped)
    unsupported: skip              # skip (default) or error: combinations the registry rejects

Everything is checked before any run starts: unknown keys and model names (with the
closest known one), bad values, duplicate run ids and an empty expansion all fail
with one message listing every problem. Combinations a model cannot take (an
initialisation it has no weights for, a resolution outside its range) are *skipped*
and listed with the reason, because the paper's grids cross every model with every
initialisation; ``unsupported: error`` turns them into errors instead.
"""

from __future__ import annotations

import difflib
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from fer_keras.config import CONFIG_DIR, ConfigError, RunConfig, make_config, read_config_file, read_yaml_mapping
from fer_keras.registry import get_spec, validate_request

TOP_KEYS = ("base", "fixed", "grid", "exclude", "include", "cv", "unsupported")
#: Keys already in the default run id; grid keys outside it are appended to the id.
ID_KEYS = {"model", "res", "dataset", "balance", "pretrain", "seed", "limit_per_class", "paper_faithful", "folds",
           "fold", "cv_group"}
#: Keys a grid may not vary: they name where results go, not what is trained.
NOT_GRIDDABLE = {"run_id", "out", "folds", "fold"}
MAX_LISTED = 25


class GridError(ConfigError):
    """A grid file that cannot be run as it is; the message lists every problem found."""


@dataclass(frozen=True)
class Point:
    """One run of a grid."""

    run_id: str
    group: str  # the run id without its fold: cross-validation folds share it
    cfg: RunConfig
    values: dict[str, Any]  # what the grid varied for this point

    @property
    def run_dir(self) -> Path:
        return self.cfg.run_dir()


@dataclass
class Grid:
    """The validated expansion of a grid file."""

    path: Path
    points: list[Point]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (point, why)
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.stem

    def manifest(self) -> dict:
        """What the report needs to show points that have no result yet."""
        return {"grid": str(self.path), "points": [
            {"run_id": p.run_id, "group": p.group, "values": p.values,
             "config": p.cfg.model_dump(mode="json")} for p in self.points]}


def _suggest(key: str, known: list[str] | set[str]) -> str:
    close = difflib.get_close_matches(key, sorted(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _find_base(name: str, grid_file: Path) -> Path:
    # Relative to the grid file first, then the working folder, then configs/.
    for candidate in (grid_file.parent / name, Path(name), CONFIG_DIR / name, CONFIG_DIR / Path(name).name):
        if candidate.is_file():
            return candidate
    raise GridError(f"{grid_file}: base config {name!r} not found next to the grid file, in the working "
                    f"folder or in {CONFIG_DIR}")


def _check_keys(mapping: dict, where: str, errors: list[str]) -> None:
    known = set(RunConfig.model_fields)
    for key in mapping:
        if key not in known:
            errors.append(f"{where}: unknown key {key!r}{_suggest(str(key), known)}")


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, list) else [value]


def _matches(values: dict[str, Any], rule: dict[str, Any]) -> bool:
    def same(a: Any, b: Any) -> bool:
        return a == b or str(a) == str(b)

    return all(any(same(values.get(k), v) for v in _as_list(want)) for k, want in rule.items())


def _id_part(value: Any) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", str(value)).strip("-")


def read_grid(path: str | Path) -> dict[str, Any]:
    """The grid file as a mapping, with its top-level keys checked."""
    path = Path(path)
    data = read_yaml_mapping(path, "grid file", GridError)
    errors = []
    for key in data:
        if key not in TOP_KEYS:
            hint = (f"; {key!r} is a run setting: put it under 'fixed:' or 'grid:'"
                    if key in RunConfig.model_fields else _suggest(str(key), TOP_KEYS))
            errors.append(f"unknown top-level key {key!r}{hint}")
    if errors:
        raise GridError(f"{path}: " + "; ".join(errors))
    return data


@dataclass
class _Sections:
    """The checked parts of a grid file."""

    base: dict[str, Any]
    fixed: dict[str, Any]
    grid: dict[str, list]
    exclude: list[dict[str, Any]]
    include: list[dict[str, Any]]
    cv: int | None
    unsupported: str


def _sections(data: dict[str, Any], path: Path) -> _Sections:
    """Check every section's shape and keys; all problems in one GridError."""
    errors: list[str] = []
    base = read_config_file(_find_base(str(data["base"]), path)) if data.get("base") else {}
    fixed = data.get("fixed") or {}
    grid = data.get("grid") or {}
    for name, section in (("fixed", fixed), ("grid", grid)):
        if not isinstance(section, dict):
            raise GridError(f"{path}: '{name}:' must be a mapping of RunConfig keys")
    _check_keys(fixed, "fixed", errors)
    _check_keys(grid, "grid", errors)
    for key, values in grid.items():
        if key in NOT_GRIDDABLE:
            errors.append(f"grid: {key!r} cannot be varied (use 'cv:' for folds; 'out' and 'run_id' name places)")
        elif not isinstance(values, list) or not values:
            errors.append(f"grid: {key!r} must be a non-empty list (single values belong under 'fixed:'), "
                          f"got {values!r}")
        elif len({str(v) for v in values}) != len(values):
            errors.append(f"grid: {key!r} lists a value twice: {values!r}")
        if key in fixed:
            errors.append(f"{key!r} is both in 'fixed:' and in 'grid:'")
    rules: dict[str, list[dict]] = {}
    for name in ("exclude", "include"):
        section = data.get(name) or []
        if not isinstance(section, list) or not all(isinstance(r, dict) and r for r in section):
            raise GridError(f"{path}: '{name}:' must be a list of non-empty mappings, got {section!r}")
        for i, rule in enumerate(section):
            _check_keys(rule, f"{name}[{i}]", errors)
        rules[name] = section
    cv = data.get("cv")
    if cv is not None and (isinstance(cv, bool) or not isinstance(cv, int) or cv < 2):
        errors.append(f"cv must be a whole number of folds >= 2, got {cv!r}")
    unsupported = data.get("unsupported", "skip")
    if unsupported not in ("skip", "error"):
        errors.append(f"unsupported must be 'skip' or 'error', got {unsupported!r}")
    if errors:
        raise GridError(f"{path}: " + "; ".join(errors))
    return _Sections(base, fixed, grid, rules["exclude"], rules["include"], cv, unsupported)


def _combinations(s: _Sections) -> tuple[list[dict[str, Any]], list[str]]:
    """The grid's combinations minus the excluded ones, plus the included sub-grids; notes on unused rules."""
    crossed = _product(s.grid)
    hits = [[_matches({**s.base, **s.fixed, **c}, rule) for rule in s.exclude] for c in crossed]
    combos = [c for c, hit in zip(crossed, hits, strict=True) if not any(hit)]
    for rule in s.include:
        combos += _product({**s.grid, **{k: _as_list(v) for k, v in rule.items()}})
    notes = [f"exclude[{i}] {rule} matches no point of the grid (a misspelt value?)"
             for i, rule in enumerate(s.exclude) if not any(h[i] for h in hits)]
    return combos, notes


def expand(data: dict[str, Any], path: str | Path = "<grid>") -> Grid:
    """Validate a grid mapping and expand it into points sorted by run id."""
    path = Path(path)
    s = _sections(data, path)
    _check_models(s.base, s.fixed, s.grid, s.include, path)
    combos, notes = _combinations(s)
    errors: list[str] = []
    points: dict[str, Point] = {}
    skipped: list[tuple[str, str]] = []
    for combo in combos:
        for fold in [None] if s.cv is None else range(s.cv):
            try:
                point = _point(s.base, s.fixed, combo, s.cv, fold)
            except ConfigError as err:
                errors.append(f"point {combo}: {err}")
                continue
            except _Unsupported as err:
                if s.unsupported == "error":
                    errors.append(f"point {combo}: {err}")
                elif fold in (None, 0):
                    skipped.append((", ".join(f"{k}={v}" for k, v in combo.items()), str(err)))
                continue
            other = points.get(point.run_id)
            if other is not None and other.cfg != point.cfg:
                errors.append(f"points {other.values} and {combo} share run id {point.run_id!r} but differ")
            points[point.run_id] = point
    if errors:
        listed = list(dict.fromkeys(errors))
        more = f" ... and {len(listed) - MAX_LISTED} more" if len(listed) > MAX_LISTED else ""
        raise GridError(f"{path}: {len(listed)} problem(s): " + "; ".join(listed[:MAX_LISTED]) + more)
    if not points:
        why = f" ({len(skipped)} combination(s) skipped as unsupported)" if skipped else ""
        raise GridError(f"{path}: the grid expands to no run{why}; check 'grid:' and 'exclude:'")
    return Grid(path=path, points=sorted(points.values(), key=lambda p: p.run_id), skipped=skipped, notes=notes)


def load_grid(path: str | Path) -> Grid:
    """Read, validate and expand a grid file."""
    return expand(read_grid(path), path)


class _Unsupported(Exception):
    """The registry knows the model but not this resolution / initialisation / pooling."""


def _product(grid: dict[str, list]) -> list[dict[str, Any]]:
    keys = list(grid)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(grid[k] for k in keys))]


def _check_models(base: dict, fixed: dict, grid: dict, include: list[dict], path: Path) -> None:
    names = {base.get("model"), fixed.get("model"), *_as_list(grid.get("model", [])),
             *(m for r in include for m in _as_list(r.get("model", [])))} - {None}
    errors = []
    for name in sorted(map(str, names)):
        try:
            get_spec(name)
        except ValueError as err:
            errors.append(str(err).split(" Registered:")[0])
    if errors:
        raise GridError(f"{path}: " + "; ".join(errors))


def _point(base: dict, fixed: dict, combo: dict, cv: int | None, fold: int | None) -> Point:
    values = {**base, **fixed, **combo}
    cfg = make_config(values, source="grid point")
    try:
        validate_request(cfg.model, cfg.res, cfg.pretrain, cfg.pooling)
    except ValueError as err:
        raise _Unsupported(str(err)) from None
    run_id = cfg.resolved_run_id() + "".join(f"_{k}{_id_part(v)}" for k, v in combo.items() if k not in ID_KEYS)
    group = run_id
    if cv is not None:
        run_id = f"{run_id}_f{fold}"
        values.update(folds=cv, fold=fold)
    if run_id != cfg.resolved_run_id() or cv is not None:
        values["run_id"] = run_id
        cfg = make_config(values, source="grid point")
    return Point(run_id=run_id, group=group, cfg=cfg, values={**combo, **({"fold": fold} if cv else {})})


def parse_only(items: list[str]) -> dict[str, list[Any]]:
    """``["model=resnet18", "fold=0", "model=esr"]`` -> ``{"model": ["resnet18", "esr"], "fold": [0]}``.

    Values are read as YAML (``fold=0`` is a number, ``cv_group=null`` is None), then as the setting's
    type, as a grid file's are (``lr=1e-3`` is 0.001); a key given twice keeps points with either value.
    """
    rule: dict[str, list[Any]] = {}
    known = set(RunConfig.model_fields)
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise GridError(f"--only {item!r}: write KEY=VALUE, e.g. --only model=resnet18")
        if key not in known:
            raise GridError(f"--only {item!r}: unknown key {key!r}{_suggest(key, known)}")
        try:
            raw = _as_list(yaml.safe_load(text))
            typed = [TypeAdapter(RunConfig.model_fields[key].annotation).validate_python(v) for v in raw]
        except yaml.YAMLError as err:
            raise GridError(f"--only {item!r}: the value is not YAML ({err.__class__.__name__})") from None
        except ValidationError as err:
            raise GridError(f"--only {item!r}: not a value of {key} ({err.errors()[0]['msg']})") from None
        if any(isinstance(r, bool) and not isinstance(t, bool) for r, t in zip(raw, typed, strict=True)):
            raise GridError(f"--only {item!r}: {key} is not a yes/no setting")
        rule.setdefault(key, []).extend(typed)
    return rule


def only(points: list[Point], rule: dict[str, list[Any]]) -> list[Point]:
    """The points whose settings match every key of ``rule`` (any of its values): one model or fold of a
    grid, run under the grid's own run ids, so the full grid later finds them complete."""
    settings = [p.cfg.model_dump() for p in points]
    for key, wanted in rule.items():
        have = [s[key] for s in settings]
        missing = [v for v in wanted if v not in have]
        if missing:  # a typo beside a right value would otherwise run only the right one
            listed = ", ".join(sorted({str(v) for v in have})[:MAX_LISTED])
            raise GridError(f"--only {key}={missing[0]!r}: no run of the grid has it; its {key} values: {listed}")
    kept = [p for p, s in zip(points, settings, strict=True) if all(s[k] in v for k, v in rule.items())]
    if not kept:
        raise GridError(f"no run of the grid has every setting of --only {rule} at once")
    return kept
