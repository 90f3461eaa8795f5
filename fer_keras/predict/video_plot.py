"""The expressions-over-time figure: one panel per face, each class's probability against time.

Written like the report's figures (``fer_keras.report.figures``): a 300 dpi PNG and a vector PDF
beside it. A line breaks where the face was not seen, rather than bridging the gap.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

DPI = 300
#: Panels drawn at most: the faces seen in the most sampled frames (short-lived tracks are mostly noise).
MAX_FACES = 8


def plot_faces(result, path: str | Path, max_faces: int = MAX_FACES) -> list[Path]:
    """Write ``path`` (.png) and its .pdf for a :class:`~fer_keras.predict.video.VideoResult`; returns both.

    Raises ValueError when the result has no rows (nothing to draw)."""
    path = Path(path)
    if not result.rows:
        raise ValueError("no faces to plot")
    counts: dict[int, int] = {}
    for r in result.rows:
        counts[r.face] = counts.get(r.face, 0) + 1
    faces = sorted(sorted(counts, key=lambda f: -counts[f])[:max_faces])
    times = sorted({r.time for r in result.rows})
    step = float(np.median(np.diff(times))) if len(times) > 1 else 1.0
    end = result.rows[-1].time
    fig, axes = plt.subplots(len(faces), 1, figsize=(8, 1.2 + 1.9 * len(faces)), sharex=True, squeeze=False)
    colours = plt.get_cmap("tab10")
    for ax, face in zip(axes[:, 0], faces, strict=True):
        rows = [r for r in result.rows if r.face == face]
        t = np.array([r.time for r in rows])
        gaps = np.flatnonzero(np.diff(t) > 1.5 * step) + 1  # break the line where the face was missing
        t = np.insert(t, gaps, np.nan)
        for k, c in enumerate(result.classes):
            p = np.insert(np.array([r.probabilities[c] for r in rows]), gaps, np.nan)
            ax.plot(t, p, color=colours(k % 10), label=c, lw=1.4, marker="." if len(rows) < 40 else None)
        ax.set_ylim(0, 1)
        ax.set_xlim(0, max(end, step))
        ax.set_ylabel(f"face {face}\nprobability")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(ncol=min(len(result.classes), 7), fontsize=8, loc="lower left", bbox_to_anchor=(0, 1.02))
    axes[-1, 0].set_xlabel("time (s)")
    shown = "" if len(faces) == len(counts) else f" ({len(faces)} of {len(counts)} faces, the most seen)"
    fig.suptitle(f"Expressions over time: {result.info.path.name}{shown}", fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    fig.savefig(path.with_suffix(".pdf"))
    plt.close(fig)
    return [path, path.with_suffix(".pdf")]
