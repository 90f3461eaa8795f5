"""One self-contained HTML page: the tables and every figure embedded as base64 PNG.

Figures are drawn at 300 dpi for print; the page shows them at their printed size and embeds
them at twice the screen's density (sharp on high-density screens) in 256 colours, so a report
over hundreds of runs stays a page a browser opens (a third of the print files' bytes).
"""

from __future__ import annotations

import base64
import html
import io
import re
from pathlib import Path

import pandas as pd
from PIL import Image

#: CSS pixels per inch, the figures' dpi, and the embedded copies' pixels per CSS pixel.
SCREEN_DPI, FIGURE_DPI, EMBED_SCALE = 96, 300, 2

STYLE = """body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;font-size:12px}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}td{white-space:nowrap}td:first-child{text-align:left}
img{max-width:100%;margin:4px 0}details{margin:1em 0}.note{color:#555;font-size:13px}"""


def _img(path: Path) -> str:
    with Image.open(path) as img:
        width = round(img.width * SCREEN_DPI / FIGURE_DPI)
        if img.width > EMBED_SCALE * width:
            img = img.resize((EMBED_SCALE * width, round(img.height * EMBED_SCALE * width / img.width)),
                             Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        img.convert("RGB").quantize(256).save(buffer, format="PNG", optimize=True)  # plots need few colours
    data = base64.b64encode(buffer.getvalue()).decode()
    return f'<img alt="{html.escape(Path(path).stem)}" width="{width}" src="data:image/png;base64,{data}">'


def _table(frame: pd.DataFrame) -> str:
    """The table as HTML; the Markdown bold (``**best**``) becomes <b>, as in the .md files."""
    body = frame.to_html(index=False, escape=True, na_rep="")
    return re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", body)


def page(title: str, intro: list[str], tables: dict[str, pd.DataFrame], figures: list[Path],
         confusions: list[Path], extra: list[Path]) -> str:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"]
    parts += [f"<p class='note'>{html.escape(line)}</p>" for line in intro]
    for name, frame in tables.items():
        parts.append(f"<h2>{html.escape(name)}</h2>{_table(frame)}")
    if figures:
        parts.append("<h2>Figures</h2>" + "".join(f"<h3>{html.escape(p.stem)}</h3>{_img(p)}" for p in figures))
    if extra:
        parts.append("<h2>Grad-CAM</h2>" + "".join(f"<h3>{html.escape(p.stem)}</h3>{_img(p)}" for p in extra))
    if confusions:
        parts.append("<h2>Confusion matrices</h2>")
        parts += [f"<details><summary>{html.escape(p.stem)}</summary>{_img(p)}</details>" for p in confusions]
    parts.append("</body></html>")
    return "\n".join(parts)
