"""Confusion-matrix figures (counts and row-normalised), written as PNG."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from fer_keras.runs import replacing  # noqa: E402


def save_confusion_matrices(cm: Sequence[Sequence[int]], class_names: Sequence[str], stem: Path,
                            title: str) -> list[Path]:
    """Write ``<stem>_counts.png`` and ``<stem>_normalized.png`` (each atomically: a full disk or a read-only
    folder leaves the previous figure, or none, and no temporary file); return their paths."""
    cm = np.asarray(cm, dtype=float)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    written = []
    for kind, data, fmt in (("counts", cm, "{:.0f}"), ("normalized", norm, "{:.2f}")):
        fig, ax = plt.subplots(figsize=(1 + 0.8 * len(class_names), 0.8 + 0.8 * len(class_names)))
        im = ax.imshow(data, cmap="Blues", vmin=0, vmax=1 if kind == "normalized" else None)
        ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
        ax.set_yticks(range(len(class_names)), class_names)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{title} ({kind})", fontsize=9)
        top = data.max() or 1
        for i in range(data.shape[0]):
            for j in range(data.shape[1]):
                ax.text(j, i, fmt.format(data[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if data[i, j] > top / 2 else "black")
        fig.colorbar(im, ax=ax, fraction=0.046)
        fig.tight_layout()
        path = Path(f"{stem}_{kind}.png")
        try:
            with replacing(path) as tmp:
                fig.savefig(tmp, dpi=100, format="png")
        finally:
            plt.close(fig)
        written.append(path)
    return written
