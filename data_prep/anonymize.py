"""Anonymous file names: each image copied to ``<sha256[:N]><ext>``, the mapping kept apart.

Web-collected file names carry names, user ids and search queries. The new name is the
content hash of the source bytes, so the same image always gets the same name (and exact
duplicates collapse). The old->new mapping goes to a private CSV that must live outside the
released folder. Each image is re-encoded from its pixels, so no EXIF (GPS, camera, artist),
XMP, ICC or comment leaves with it (PNG stays lossless; JPEG is re-encoded at quality 95; other
types become PNG); ``--keep-metadata`` copies the bytes instead, metadata and all.
Excluded images (exclude.txt) are not released. Unreadable images are left out and named on the
console and in ``<mapping>.skipped.csv`` beside the private mapping (their names are private too).
The release is written into a hidden temporary folder that becomes ``--dst`` only when complete,
so a failed run leaves no half release behind and the same command can simply be run again.

Usage: python -m data_prep.anonymize --src DATA/btfer_raw --dst DATA/btfer \
       --mapping private/btfer_names.csv [--keep-metadata]
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from fer_keras.runs import replacing

from .cli import run_step, step_parser
from .images import BadImageError, open_rgb, save_clean, sha256_file
from .layout import require_new_folder, scan


def anonymize(src: str | os.PathLike, dst: str | os.PathLike, mapping: str | os.PathLike, *,
              hash_chars: int = 20, keep_metadata: bool = False) -> pd.DataFrame:
    """Copy ``src`` to ``dst`` under content-hash names; write and return the mapping.

    Unreadable images are left out and listed in ``skipped_file(mapping)``; the returned table's
    ``attrs["skipped"]`` holds them as (original, reason).
    """
    src, dst, mapping = Path(src), Path(dst), Path(mapping)
    if dst.resolve() in mapping.resolve().parents:
        raise ValueError(f"the mapping {mapping} must not be inside the released folder {dst}")
    if mapping.exists():
        raise FileExistsError(f"mapping {mapping} exists; refusing to overwrite it")
    if not 8 <= hash_chars <= 64:
        raise ValueError(f"hash_chars must be 8..64, got {hash_chars}")
    items = scan(src)
    require_new_folder(dst)
    work = Path(tempfile.mkdtemp(prefix=f".{dst.name}.partial-", dir=dst.parent))
    try:
        rows, skipped = _release(src, items, work, hash_chars, keep_metadata)
        if not rows:
            raise BadImageError(f"{src}: no readable image to release ({len(skipped)} unreadable, e.g. "
                                f"{skipped[0][0]}: {skipped[0][1]})")
        table = pd.DataFrame(rows, columns=["original", "anonymous", "sha256", "duplicate_of_earlier"])
        mapping.parent.mkdir(parents=True, exist_ok=True)
        with replacing(mapping) as tmp:
            table.to_csv(tmp, index=False)
        dst.rmdir()  # the empty folder require_new_folder made: the finished release takes its place
        work.rename(dst)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        mapping.unlink(missing_ok=True)
        raise
    skipped_file(mapping).unlink(missing_ok=True)
    if skipped:
        pd.DataFrame(skipped, columns=["original", "reason"]).to_csv(skipped_file(mapping), index=False)
    table.attrs["skipped"] = skipped
    return table


def skipped_file(mapping: Path) -> Path:
    """Where the unreadable originals are listed: beside the private mapping, never in the release."""
    return mapping.with_name(f"{mapping.stem}.skipped.csv")


def _release(src: Path, items: list, out: Path, hash_chars: int,
             keep_metadata: bool) -> tuple[list[dict], list[tuple[str, str]]]:
    """Write every readable image under ``out``; (mapping rows, unreadable (original, reason))."""
    rows, skipped = [], []
    for it in items:
        try:
            # Decoded even when the bytes are copied: an unreadable file is never released.
            img = open_rgb(src / it.rel)
        except BadImageError as err:
            skipped.append((it.rel.as_posix(), str(err).removeprefix(f"{src / it.rel}: ")))
            continue
        digest = sha256_file(src / it.rel)
        ext = it.rel.suffix.lower()
        if not keep_metadata and ext not in (".jpg", ".jpeg", ".png"):
            ext = ".png"
        new = it.rel.parent / f"{digest[:hash_chars]}{ext}"
        dup = (out / new).exists()
        if not dup:
            (out / new).parent.mkdir(parents=True, exist_ok=True)
            if keep_metadata:
                shutil.copyfile(src / it.rel, out / new)  # the bytes, EXIF and all
            else:
                save_clean(img, out / new)  # pixels only: no metadata
        rows.append({"original": it.rel.as_posix(), "anonymous": new.as_posix(),
                     "sha256": digest, "duplicate_of_earlier": dup})
    return rows, skipped


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
        skipped = t.attrs["skipped"]
        if skipped:
            print(f"left out {len(skipped)} unreadable image(s) (listed in {skipped_file(a.mapping)}):")
            print("\n".join(f"  {name}: {why}" for name, why in skipped))

    return run_step(work)


if __name__ == "__main__":
    raise SystemExit(main())
