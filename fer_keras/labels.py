"""Canonical expression classes, their spelling variants and each dataset's label codes.

Class order is canonical (alphabetical, as Keras' ``flow_from_directory`` ordered
the BTFER paper's folders) everywhere in the suite, never the order folders are found in.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

CANONICAL_CLASSES: tuple[str, ...] = (
    "angry", "disgust", "fear", "happy", "neutral", "sad", "surprise",
)
CONTEMPT = "contempt"
#: All names a class may carry, in canonical order (contempt sorts between angry and disgust).
ALL_CLASSES: tuple[str, ...] = tuple(sorted((*CANONICAL_CLASSES, CONTEMPT)))

ALIASES: dict[str, str] = {
    "anger": "angry", "angry": "angry", "an": "angry",
    "disgust": "disgust", "disgusted": "disgust", "disgusting": "disgust", "di": "disgust",
    "fear": "fear", "fearful": "fear", "afraid": "fear", "scared": "fear", "fe": "fear",
    "happy": "happy", "happiness": "happy", "joy": "happy", "ha": "happy",
    "neutral": "neutral", "neutrality": "neutral", "calm": "neutral", "ne": "neutral",
    "sad": "sad", "sadness": "sad", "sa": "sad",
    "surprise": "surprise", "surprised": "surprise", "su": "surprise",
    "contempt": "contempt", "contemptuous": "contempt", "co": "contempt",
}

# Label codes of the public datasets (PROTOCOL.md, "Datasets").
FER2013_CODES: dict[int, str] = {
    0: "angry", 1: "disgust", 2: "fear", 3: "happy", 4: "sad", 5: "surprise", 6: "neutral",
}
RAFDB_CODES: dict[int, str] = {
    1: "surprise", 2: "fear", 3: "disgust", 4: "happy", 5: "sad", 6: "angry", 7: "neutral",
}
AFFECTNET_CODES: dict[int, str | None] = {
    0: "neutral", 1: "happy", 2: "sad", 3: "surprise", 4: "fear", 5: "disgust", 6: "angry",
    7: "contempt", 8: None, 9: None, 10: None,  # none, uncertain, non-face: dropped
}
#: CK+ Emotion/*_emotion.txt codes (Lucey et al. 2010); 0 (neutral) never appears in those files.
CKPLUS_CODES: dict[int, str] = {
    0: "neutral", 1: "angry", 2: "contempt", 3: "disgust", 4: "fear", 5: "happy", 6: "sad",
    7: "surprise",
}
FERPLUS_COLUMNS: tuple[str, ...] = (
    "neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt",
    "unknown", "NF",
)


class UnknownClassError(ValueError):
    """A folder or label name that maps to no expression class."""


def canonical_name(name: str, *, where: str = "") -> str:
    """Map a class spelling ('Happy', 'happiness', '3_happy') to its canonical name."""
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    if key in ALIASES:
        return ALIASES[key]
    # Tolerate numbered folders such as "3_happy" or "happy_03".
    for part in key.split("_"):
        if part in ALIASES and len(part) > 2:
            return ALIASES[part]
    close = difflib.get_close_matches(key, ALIASES, n=1)
    hint = f" Did you mean {ALIASES[close[0]]!r}?" if close else ""
    place = f" (at {where})" if where else ""
    raise UnknownClassError(
        f"{name!r}{place} is not an expression class. Known classes: "
        f"{', '.join(ALL_CLASSES)}.{hint}"
    )


def canonical_order(names: Iterable[str]) -> tuple[str, ...]:
    """Sort canonical class names in the suite's fixed order."""
    names = set(names)
    unknown = names - set(ALL_CLASSES)
    if unknown:
        raise UnknownClassError(f"not canonical class names: {sorted(unknown)}")
    return tuple(c for c in ALL_CLASSES if c in names)


def check_same_classes(train: Iterable[str], test: Iterable[str], *, test_name: str) -> None:
    """Fail before any work when an evaluation set's classes differ from the model's."""
    train, test = tuple(train), tuple(test)
    if set(train) != set(test):
        raise ValueError(
            f"class sets differ between the model ({', '.join(train)}) and {test_name} "
            f"({', '.join(test)}): missing in {test_name}: {sorted(set(train) - set(test))}, "
            f"extra in {test_name}: {sorted(set(test) - set(train))}"
        )


def check_known_classes(model: Iterable[str], test: Iterable[str], *, test_name: str) -> None:
    """Fail before any work when an evaluation set holds a class the model has no output for (a set
    holding only some of the model's classes is fine: it is evaluated on those, see evaluate.subset)."""
    model, extra = tuple(model), sorted(set(test) - set(model), key=ALL_CLASSES.index)
    if extra:
        names = ", ".join(extra)
        raise ValueError(
            f"{test_name} holds class(es) the model does not know: {names} (the model's classes: "
            f"{', '.join(model)}). Drop them (move the {'/, '.join(extra)}/ folder(s) out of the set) or map them "
            f"to a class the model knows (merge the folder into that class's folder, e.g. contempt/ into disgust/)"
        )


def output_columns(model_classes: Sequence[str], eval_classes: Sequence[str], *, test_name: str) -> list[int]:
    """For each class of the evaluation set, in its order, the model output that scores it.

    Same set, other order: the model's outputs are reordered, not read as if they were in the
    set's order. That is safe only when the set is in canonical order (every reader produces
    it); any other order fails, naming both.
    """
    model_classes, eval_classes = tuple(model_classes), tuple(eval_classes)
    if len(set(model_classes)) != len(model_classes):
        raise ValueError(f"the model's class list repeats a class: {', '.join(model_classes)}")
    check_same_classes(model_classes, eval_classes, test_name=test_name)
    canonical = tuple(c for c in ALL_CLASSES if c in eval_classes)
    if model_classes != eval_classes and eval_classes != canonical:
        raise ValueError(
            f"class order differs between the model ({', '.join(model_classes)}) and {test_name} "
            f"({', '.join(eval_classes)}), and {test_name} is not in the canonical order "
            f"({', '.join(ALL_CLASSES)}); refusing to guess how its labels map"
        )
    return [model_classes.index(c) for c in eval_classes]
