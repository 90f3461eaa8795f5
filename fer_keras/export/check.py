"""Which registered models convert to TFLite, and why the others do not.

Every model in ``registry.list_models()`` is built at one resolution with random
weights and converted to each quantization; a model that converts is also run once in
the interpreter and compared with Keras, so "converts but computes something else"
is caught too. A new model is checked the day it is registered.
"""

from __future__ import annotations

import traceback

import numpy as np

from fer_keras import registry
from fer_keras.export.tflite import QUANTS, TFLiteModel, convert, primary_output
from fer_keras.registry import build_model, get_spec


def _reason(err: BaseException) -> str:
    """The converter's own words, shortened: the last non-empty line naming the problem."""
    text = "".join(traceback.format_exception_only(type(err), err)).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    useful = [ln for ln in lines if "error" in ln.lower() or "not supported" in ln.lower()] or lines
    return useful[-1][:400] if useful else type(err).__name__


def check_model(name: str, res: int = 48, quants: tuple[str, ...] = QUANTS, calibration: int = 8) -> dict:
    """Conversion status per quantization of one model built with random weights."""
    import keras  # here: the export CLI parses its arguments before TensorFlow loads

    spec = get_spec(name)
    row: dict = {"model": name, "res": res}
    if not spec.supports(res):  # convertibility is about ops: check it at a size it does take
        row["note"] = f"does not take {res} px (takes {spec.resolution_text()}); checked at {spec.min_resolution}"
        res = row["res"] = spec.min_resolution
    keras.utils.set_random_seed(0)
    try:
        model = build_model(name, res, 7)
    except Exception as err:  # noqa: BLE001 - a broken builder is a result here, not a crash
        return {**row, "convertible": False, "reason": f"build failed: {_reason(err)}"}
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (calibration, res, res, 3)).astype(np.float32)
    reference = np.asarray(primary_output(model(images[:2], training=False)))
    row["formats"] = {}
    for quant in quants:
        try:
            lite = TFLiteModel(convert(model, res, quant, lambda: iter(images)))
            diff = float(np.abs(lite(images[:2]) - reference).max())
            row["formats"][quant] = {"ok": True, "max_abs_prob_diff": diff}
        except Exception as err:  # noqa: BLE001 - the converter raises many types; record its reason
            row["formats"][quant] = {"ok": False, "reason": _reason(err)}
    failed = {q: f["reason"] for q, f in row["formats"].items() if not f["ok"]}
    row["convertible"] = not failed
    row["reason"] = "; ".join(f"{q}: {r}" for q, r in failed.items()) or None
    keras.backend.clear_session()
    return row


def check_all(names: list[str] | None = None, res: int = 48, quants: tuple[str, ...] = QUANTS) -> list[dict]:
    rows = []
    for name in names or registry.list_models():  # looked up at call time: tests narrow the zoo
        rows.append(check_model(name, res, quants))
        print(f"{name}: {'converts' if rows[-1]['convertible'] else 'NOT convertible: ' + rows[-1]['reason']}",
              flush=True)
    return rows


def markdown(rows: list[dict], quants: tuple[str, ...] = QUANTS) -> str:
    head = "| model | res | " + " | ".join(quants) + " | reason, note |\n|---|---|" + "---|" * len(quants) + "---|\n"
    lines = []
    for r in rows:
        cells = [("yes" if r["formats"][q]["ok"] else "no") if "formats" in r and q in r["formats"] else "-"
                 for q in quants]
        why = "; ".join(x for x in (r.get("reason"), r.get("note")) if x)
        lines.append(f"| {r['model']} | {r['res']} | " + " | ".join(cells) + f" | {why} |")
    return head + "\n".join(lines) + "\n"
