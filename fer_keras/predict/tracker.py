"""Follow faces across a video's sampled frames by box overlap, so each keeps one ``face`` id.

A detection continues the track whose last box it overlaps most (intersection over union at
least ``min_iou``, greedily, best pairs first); the rest start new tracks. A track unseen for more
than ``max_gap_s`` seconds ends, so a face that leaves and comes back later gets a new id. Enough
for interviews and lab recordings; crossing faces of the same size can swap ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

Box = tuple[int, int, int, int]  # x, y, width, height


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    inter = max(0, w) * max(0, h)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


@dataclass
class _Track:
    box: Box
    last_time: float


class IoUTracker:
    """Stable ids (0, 1, ... in order of first appearance) for the faces of successive frames."""

    def __init__(self, min_iou: float = 0.3, max_gap_s: float = 1.0) -> None:
        self.min_iou = min_iou
        self.max_gap_s = max_gap_s
        self._tracks: dict[int, _Track] = {}
        #: How many ids have been given out.
        self.count = 0

    def update(self, boxes: Sequence[Box], time: float) -> list[int]:
        """The id of each box in a frame at ``time`` seconds (times must not decrease)."""
        self._tracks = {i: t for i, t in self._tracks.items() if time - t.last_time <= self.max_gap_s}
        pairs = sorted(((iou(t.box, box), tid, j) for tid, t in self._tracks.items() for j, box in enumerate(boxes)),
                       reverse=True)
        ids: list[int | None] = [None] * len(boxes)
        taken: set[int] = set()
        for overlap, tid, j in pairs:
            if overlap < self.min_iou:
                break
            if tid not in taken and ids[j] is None:
                ids[j] = tid
                taken.add(tid)
        for j, box in enumerate(boxes):
            if ids[j] is None:
                ids[j] = self.count
                self.count += 1
            self._tracks[ids[j]] = _Track(box, time)
        return [int(i) for i in ids]
