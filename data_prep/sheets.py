"""Contact sheets: many thumbnails on one PNG, each with a short caption, for eyeballing."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from .images import BadImageError, open_rgb


def contact_sheet(paths: Sequence[Path], captions: Sequence[str], *, thumb: int = 128,
                  cols: int = 8, title: str = "",
                  frames: Sequence[str | None] | None = None) -> Image.Image:
    """A grid of ``thumb``-px thumbnails with a caption under each (and an optional frame colour).

    Unreadable images become a grey cell captioned with the error instead of failing the sheet.
    """
    font = ImageFont.load_default()
    cap_h, title_h = 24, (18 if title else 0)
    cols = max(1, min(cols, len(paths)))
    rows = (len(paths) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * (thumb + 4), title_h + rows * (thumb + cap_h + 4)), "white")
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((4, 3), title, fill="black", font=font)
    for i, (path, cap) in enumerate(zip(paths, captions, strict=True)):
        x = (i % cols) * (thumb + 4) + 2
        y = title_h + (i // cols) * (thumb + cap_h + 4) + 2
        try:
            img = open_rgb(path)
            if max(img.size) > thumb:
                img.thumbnail((thumb, thumb))
            elif max(img.size) < thumb:  # 48 px FER faces: enlarge so they can be judged
                s = thumb / max(img.size)
                img = img.resize((max(1, round(img.width * s)), max(1, round(img.height * s))))
            sheet.paste(img, (x + (thumb - img.width) // 2, y + (thumb - img.height) // 2))
        except BadImageError:
            draw.rectangle((x, y, x + thumb - 1, y + thumb - 1), fill=(200, 200, 200))
            cap = "UNREADABLE " + cap
        if frames and frames[i]:
            draw.rectangle((x - 2, y - 2, x + thumb + 1, y + thumb + 1), outline=frames[i], width=3)
        for j, line in enumerate(_wrap(cap, thumb)):
            draw.text((x, y + thumb + 1 + j * 11), line, fill="black", font=font)
    return sheet


def _wrap(text: str, width_px: int) -> list[str]:
    """At most two caption lines: split at a newline, else cut to the cell width."""
    n = max(4, width_px // 6)
    lines = text.split("\n") if "\n" in text else [text[i:i + n] for i in range(0, len(text), n)]
    return [line[:n] for line in lines[:2]]


def save_sheet(img: Image.Image, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, "PNG", optimize=False)
    return path
