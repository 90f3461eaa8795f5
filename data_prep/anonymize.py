"""Anonymous file names: each image copied to ``<sha256[:N]><ext>``, the mapping kept apart.

Web-collected file names carry names, user ids and search queries. The new name is the
content hash of the source bytes, so the same image always gets the same name (and exact
duplicates collapse). The old->new mapping goes to a private CSV that must live outside the
released folder. Each image is re-encoded from its pixels, so no EXIF (GPS, camera, artist),
XMP, ICC or comment leaves with it (PNG stays lossless; JPEG is re-encoded at quality 95; other
types become PNG); ``--keep-metadata`` copies the bytes instead, metadata and all.
Excluded images (exclude.txt) are not released.

Usage: python -m data_prep.anonymize --src DATA/btfer_raw --dst DATA/btfer \
       --mapping private/btfer_names.csv [--keep-metadata]
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd

from .cli import run_step, step_parser
from .images import open_rgb, save_clean, sha256_file
from .layout import require_new_folder, scan


def anonymize(src: str | os.PathLike, dst: str | os.PathLike, mapping: str | os.PathLike, *,
              hash_chars: int = 20, keep_metadata: bool = False) -> pd.DataFrame:
    """Copy ``src`` to ``dst`` under content-hash names; write and return the mapping."""
    src, dst, mapping = Path(src), Path(dst), Path(mapping)
    if dst.resolve() in mapping.resolve().parents:
        raise ValueError(f"the mapping {mapping} must not be inside the released folder {dst}")
    if mapping.exists():
        raise FileExistsError(f"mapping {mapping} exists; refusing to overwrite it")
    if not 8 <= hash_chars <= 64:
        raise ValueError(f"hash_chars must be 8..64, got {hash_chars}")
    items = scan(src)
    require_new_folder(dst)
    rows = []
    for it in items:
        digest = sha256_file(src / it.rel)
        ext = it.rel.suffix.lower()
        if not keep_metadata and ext not in (".jpg", ".jpeg", ".png"):
            ext = ".png"
        new = it.rel.parent / f"{digest[:hash_chars]}{ext}"
        dup = (dst / new).exists()
        if not dup:
            (dst / new).parent.mkdir(parents=True, exist_ok=True)
            if keep_metadata:
                shutil.copyfile(src / it.rel, dst / new)  # the bytes, EXIF and all
            else:
                save_clean(open_rgb(src / it.rel), dst / new)  # pixels only: no metadata
        rows.append({"original": it.rel.as_posix(), "anonymous": new.as_posix(),
                     "sha256": digest, "duplicate_of_earlier": dup})
    table = pd.DataFrame(rows, columns=["original", "anonymous", "sha256",
                                        "duplicate_of_earlier"])
    mapping.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(mapping, index=False)
    return table


def main(argv: list[str] | None = None) -> int:
    p = step_parser("data_prep.anonymize", __doc__)
    p.add_argument("--src", required=True, type=Path)
    p.add_argument("--dst", required=True, type=Path)
    p.add_argument("--mapping", required=True, type=Path, help="private CSV, outside --dst")
    p.add_argument("--hash-chars", type=int, default=20, help="hex digits kept in names")
    p.add_argument("--keep-metadata", action="store_true",
                   help="copy the files' bytes, EXIF/GPS included (default: strip all metadata)")
    a = p.parse_args(argv)

    def work() -> None:
        t = anonymize(a.src, a.dst, a.mapping, hash_chars=a.hash_chars, keep_metadata=a.keep_metadata)
        kept = "metadata KEPT (--keep-metadata)" if a.keep_metadata else "metadata stripped"
        print(f"{len(t)} images -> {a.dst} ({int(t['duplicate_of_earlier'].sum())} exact copies "
              f"merged, {kept}); mapping: {a.mapping}")

    return run_step(work)


if __name__ == "__main__":
    raise SystemExit(main())
