"""Evaluation sets that hold only some of the model's classes (CK+ has no neutral, JAFFE-style sets a few).

Such a set is scored on the classes it has: its images keep the model's full class list, so a
prediction of a class the set lacks counts as wrong (never re-read as the best class it has), and
macro averages run over the classes present (``classes_evaluated`` in the result). A set with a
class the model does not know is refused, naming the class and how to drop or map it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from fer_keras.data.readers import ImageSet
from fer_keras.labels import ALL_CLASSES, check_known_classes


def on_model_classes(images: ImageSet, model_classes: Sequence[str]) -> tuple[ImageSet, list[str] | None]:
    """(``images`` relabelled in the model's classes, the classes it holds) when it lacks some of them;
    (``images``, None) when it has them all."""
    check_known_classes(model_classes, images.class_names, test_name=images.name)
    if set(images.class_names) == set(model_classes):
        return images, None
    order = tuple(c for c in ALL_CLASSES if c in set(model_classes))  # canonical: output_columns maps it
    remap = np.array([order.index(c) for c in images.class_names], dtype=np.int32)
    wide = dataclasses.replace(images, class_names=order, labels=remap[images.labels])
    return wide, list(images.class_names)


def subset_line(evaluated: Sequence[str], model_classes: Sequence[str]) -> str:
    """The console's note on a subset evaluation."""
    missing = [c for c in model_classes if c not in evaluated]
    return (f"evaluated on the {len(evaluated)} classes the set has ({', '.join(evaluated)}); it has no "
            f"{', '.join(missing)}: a prediction of {'that class' if len(missing) == 1 else 'those'} counts as wrong")
