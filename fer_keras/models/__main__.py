"""``fer-models`` / ``make models`` / ``python -m fer_keras.models``: the registered models and what
they support, read from the catalog without building a model or importing TensorFlow."""

from __future__ import annotations

from fer_keras.console import CommandParser
from fer_keras.registry import Option, get_spec, list_models


def _options_text(options: dict[str, Option]) -> str:
    # From the schema, the one place options and their defaults are written.
    return "; options: " + ", ".join(f"{k}={o.default!r}" for k, o in options.items()) if options else ""


def table() -> str:
    header = ("model", "family", "paper name", "res px", "init", "params@48", "params@224", "portable")
    rows = [(*header, "description")]
    for name in list_models():
        s = get_spec(name)
        rows.append((
            name, s.family, s.paper_name,
            f"{s.min_resolution}-{s.max_resolution}" if s.max_resolution else str(s.min_resolution),
            ",".join(s.pretrains),
            f"{s.params[48]:,}" if 48 in s.params else "-",
            f"{s.params[224]:,}" if 224 in s.params else "-",
            "yes" if s.portable else "no (needs fer_keras)",
            s.description + _options_text(s.options),
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + f" | {r[-1]} |"
        for r in rows
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|---|")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    # Listing reads the catalog only: no TensorFlow, so it answers in well under a second.
    CommandParser(prog="fer-models", description=__doc__.splitlines()[0]).parse_args(argv)
    print(table())


if __name__ == "__main__":
    main()
