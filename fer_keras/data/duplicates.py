"""Exact and near duplicates between image sets: content keys (cached) and a vectorised search.

FER2013's test folder holds ~530 byte copies of training images and ~1,100 with a near copy;
a score on them measures memory, not recognition. Every image gets two content keys: the
SHA-256 of its bytes (of its pixels for a CSV set) and a 64-bit perceptual hash
(``imagehash.phash``, as ``data_prep.dedupe``). Two images are duplicates when the digests
are equal (exact) or the hashes are at most :data:`NEAR_THRESHOLD` bits apart (near).

Hashing FER2013 takes a minute, so a set's keys are cached under ``$FER_KERAS_CACHE``
(default ``~/.cache/fer_keras``) in a file named by a digest of its file list (path, size,
modification time): any run on the same files reads them back. The search compares packed
hashes with NumPy popcounts in memory-bounded chunks (FER2013's 7k x 28k pairs take seconds).
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image

from fer_keras.data.image_types import to_8bit
from fer_keras.data.images import upright
from fer_keras.data.readers import ImageSet

#: Largest Hamming distance (of 64 bits) between the perceptual hashes of near duplicates: data_prep dedupe's.
NEAR_THRESHOLD = 6
HASH_NAME = "phash64"
CACHE_ENV = "FER_KERAS_CACHE"
#: Elements of one chunk's distance matrix (uint64 XOR): bounds the search's memory to ~32 MB.
CHUNK_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class ContentKeys:
    """Per image: ``sha`` the SHA-256 digest (32 bytes), ``phash`` the perceptual hash (uint64)."""

    sha: np.ndarray
    phash: np.ndarray

    def __len__(self) -> int:
        return len(self.sha)


def cache_dir() -> Path:
    """Where keys and duplicate lists are kept: $FER_KERAS_CACHE, else ~/.cache/fer_keras."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "fer_keras")


def _entries(images: ImageSet) -> list[bytes]:
    """One line per image that changes when the image may have: path, size and mtime (or its pixels), and
    an EXIF orientation other than 1 (keys cached before the hash turned such images upright are stale)."""
    if images.pixels is not None:
        return [hashlib.sha256(p.tobytes() + str(p.shape).encode()).digest() for p in images.pixels]
    out = []
    for p, turn in zip(images.paths, images.orientation(), strict=True):
        st = os.stat(p)
        line = f"{os.path.abspath(p)}\t{st.st_size}\t{st.st_mtime_ns}"
        out.append((line if turn == 1 else f"{line}\t{turn}").encode())
    return out


def set_digest(images: ImageSet) -> tuple[str, np.ndarray]:
    """(digest of the set's sorted file list, the permutation that sorts it): the same files in any
    order (another seed's split, a pooled train+val) share one cache entry."""
    entries = _entries(images)
    order = np.array(sorted(range(len(entries)), key=entries.__getitem__), dtype=np.int64)
    h = hashlib.sha256(HASH_NAME.encode())
    for i in order:
        h.update(entries[i] + b"\n")
    return h.hexdigest()[:32], order


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """Hash bit rows (n, b) as (n, ceil(b / 64)) uint64 words, zero-padded: the form :func:`near_pairs` searches,
    so a hash of any length (``data_prep.dedupe``'s other methods and sizes) goes through the same popcount search."""
    packed = np.packbits(np.asarray(bits, bool), axis=1)
    return np.pad(packed, ((0, 0), (0, -packed.shape[1] % 8))).view(np.uint64)


def _phash(img: Image.Image) -> np.uint64:
    return pack_bits(imagehash.phash(to_8bit(img)).hash.reshape(1, -1))[0, 0]


def _file_keys(path: str) -> tuple[bytes, np.uint64]:
    data = Path(path).read_bytes()
    with Image.open(io.BytesIO(data)) as img:
        # Hashed upright, as the pipeline shows it: a sideways copy of a training face is still a copy.
        return hashlib.sha256(data).digest(), _phash(upright(img))


def _pixel_keys(pixels: np.ndarray) -> tuple[bytes, np.uint64]:
    return hashlib.sha256(pixels.tobytes()).digest(), _phash(Image.fromarray(pixels))


def _compute(images: ImageSet, workers: int) -> ContentKeys:
    if images.pixels is not None:
        keys = [_pixel_keys(p) for p in images.pixels]
    else:
        with ThreadPoolExecutor(max(1, workers)) as pool:
            keys = list(pool.map(_file_keys, images.paths, chunksize=64))
    sha = np.array([k[0] for k in keys], dtype="S32")
    return ContentKeys(sha=sha, phash=np.array([k[1] for k in keys], dtype=np.uint64))


def _save(path: Path, **arrays: np.ndarray) -> None:
    """Write a cache file atomically; a cache that cannot be written only costs time later."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}.npz")
        np.savez(tmp, **arrays)
        tmp.replace(path)
    except OSError as err:
        print(f"note: duplicate cache {path} not written ({err.strerror or err}); set {CACHE_ENV}",
              file=sys.stderr)


def _load(path: Path, order: np.ndarray, names: tuple[str, ...]) -> dict[str, np.ndarray] | None:
    """The arrays ``names`` of a cache file (stored in sorted-file ``order``) back in the set's own order; None
    when there is no such file or it holds another number of images."""
    if not path.is_file():
        return None
    back = np.empty_like(order)
    back[order] = np.arange(len(order))
    with np.load(path) as f:
        if len(f[names[0]]) != len(order):
            return None
        return {name: f[name][back] for name in names}


def content_keys(images: ImageSet, *, workers: int = 2) -> ContentKeys:
    """The content keys of every image of ``images``, in its order (read from the cache when there)."""
    if len(images) == 0:
        return ContentKeys(np.empty(0, "S32"), np.empty(0, np.uint64))
    digest, order = set_digest(images)
    path = cache_dir() / "content_keys" / f"{digest}.npz"
    cached = _load(path, order, ("sha", "phash"))
    if cached is not None:
        return ContentKeys(cached["sha"], cached["phash"])
    keys = _compute(images, workers)
    _save(path, sha=keys.sha[order], phash=keys.phash[order])
    return keys


def _chunk(n_other: int) -> int:
    return max(1, CHUNK_ELEMENTS // max(n_other, 1))


def nearest_distance(query: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """For each hash of ``query``, the smallest Hamming distance to any hash of ``reference`` (65: none)."""
    out = np.full(len(query), 65, dtype=np.int16)
    if len(reference) == 0:
        return out
    step = _chunk(len(reference))
    for i in range(0, len(query), step):
        out[i:i + step] = np.bitwise_count(query[i:i + step, None] ^ reference[None, :]).min(axis=1)
    return out


def near_pairs(phash: np.ndarray, threshold: int = NEAR_THRESHOLD) -> np.ndarray:
    """Every pair (i < j) of one set whose hashes are at most ``threshold`` bits apart, as (m, 2).

    ``phash`` is one uint64 per image, or (n, words) uint64 rows (:func:`pack_bits`) for longer hashes.
    """
    words = phash[:, None] if phash.ndim == 1 else phash
    n, width, out = len(words), words.shape[1], [np.empty((0, 2), np.int64)]
    step = _chunk(n * width)
    for i0 in range(0, n, step):
        bits = np.bitwise_count(words[i0:i0 + step, None] ^ words[None, i0:])  # (rows, n - i0, width)
        block = bits[..., 0] if width == 1 else bits.sum(axis=2, dtype=np.int32)
        ii, jj = np.nonzero(block <= threshold)
        keep = jj > ii  # columns start at i0 too: the diagonal and the lower triangle are dropped
        out.append(np.stack([ii[keep] + i0, jj[keep] + i0], axis=1))
    return np.concatenate(out)


def _first_of(ids: np.ndarray) -> np.ndarray:
    """For each element, the index of the first element with the same id."""
    _, inverse = np.unique(ids, return_inverse=True)
    return np.unique(inverse, return_index=True)[1][inverse.ravel()]


def _components(n: int, pairs: np.ndarray) -> np.ndarray:
    """Connected components of the graph on 0..n-1 with edges ``pairs``, numbered by their first node."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    _, firsts, inverse = np.unique(comp, return_index=True, return_inverse=True)
    rank = np.empty(len(firsts), np.int64)
    rank[np.argsort(firsts, kind="stable")] = np.arange(len(firsts))
    return rank[inverse.ravel()]


def duplicate_groups(keys: ContentKeys, threshold: int = NEAR_THRESHOLD) -> np.ndarray:
    """A group id per image: images linked by a chain of exact or near duplicates share one.

    Ids are numbered by each group's first image, so a set without duplicates gets 0..n-1.
    """
    n = len(keys)
    same = np.stack([np.arange(n), _first_of(keys.sha)], axis=1)
    pairs = np.concatenate([near_pairs(keys.phash, threshold), same]) if threshold >= 0 else same
    return _components(n, pairs)


def merge_groups(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """One grouping in which images sharing a group of ``a`` or of ``b`` (e.g. subject, duplicates) are together."""
    n = len(a)
    pairs = np.concatenate([np.stack([np.arange(n), _first_of(ids)], axis=1) for ids in (a, b)])
    return _components(n, pairs)


def duplicate_kinds(reference: ContentKeys, query: ContentKeys, threshold: int = NEAR_THRESHOLD) -> np.ndarray:
    """Per image of ``query``: 'exact' (a byte copy in ``reference``), 'near' (a hash within
    ``threshold`` bits of one) or '' (neither)."""
    exact = np.isin(query.sha, reference.sha)
    near = ~exact & (nearest_distance(query.phash, reference.phash) <= threshold)
    return np.where(exact, "exact", np.where(near, "near", ""))


def pooled(sets: list[ImageSet], name: str) -> ImageSet:
    """Several sets as one (labels kept), e.g. train and validation: the images a run learnt or chose on."""
    sets = [s for s in sets if s is not None]
    pixels = [s.pixels for s in sets]
    return ImageSet(name=name, class_names=sets[0].class_names, labels=np.concatenate([s.labels for s in sets]),
                    paths=sum((s.paths for s in sets), []),
                    pixels=np.concatenate(pixels) if all(p is not None for p in pixels) else None,
                    orientations=np.concatenate([s.orientation() for s in sets]))


def duplicates_in(reference: ImageSet, images: ImageSet, threshold: int = NEAR_THRESHOLD) -> tuple[np.ndarray, Path]:
    """(:func:`duplicate_kinds` of ``images`` against ``reference``, its cache file): computed once per pair
    of file lists, read back after that."""
    ref_digest, _ = set_digest(reference)
    digest, order = set_digest(images)
    path = cache_dir() / "duplicates" / f"{ref_digest}_{digest}_t{threshold}.npz"
    cached = _load(path, order, ("kinds",))
    if cached is not None:
        return cached["kinds"].astype(str), path
    kinds = duplicate_kinds(content_keys(reference), content_keys(images), threshold)
    _save(path, kinds=kinds[order])
    return kinds, path


def summary(kinds: np.ndarray, threshold: int = NEAR_THRESHOLD) -> dict:
    """Counts for metrics.json and the console: images, exact and near duplicates, those left."""
    exact, near = int((kinds == "exact").sum()), int((kinds == "near").sum())
    return {"images": int(len(kinds)), "exact": exact, "near": near, "unique": int(len(kinds)) - exact - near,
            "hash": HASH_NAME, "threshold": threshold}


def carve_unique(index: np.ndarray, labels: np.ndarray, groups: np.ndarray, share: float,
                 seed: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(train, val) of ``index``: ``share`` of it as a stratified validation split drawn only from the images
    that have no exact or near duplicate among ``index`` (their group has one member); None when too few have.

    Drawing from the unique images, rather than splitting whole groups, keeps a long chain of similar
    faces (synthetic sets link hundreds) from landing in validation. Without duplicates every image is
    unique and the split is ``train_test_split``'s of all images: datasets without copies keep theirs.
    """
    from sklearn.model_selection import train_test_split

    _, inverse, counts = np.unique(groups[index], return_inverse=True, return_counts=True)
    single = index[counts[inverse.ravel()] == 1]
    if len(single) == len(index):
        wanted = share
    else:
        wanted = share * len(index) / max(len(single), 1)
        if wanted >= 0.5:
            return None
    try:
        _, val = train_test_split(single, test_size=wanted, random_state=seed, stratify=labels[single])
    except ValueError:  # a class with fewer than two unique images
        return None
    return np.setdiff1d(index, val), np.sort(val)


def copies_note(groups: np.ndarray | None, kept_out: bool) -> str:
    """How the validation split treated duplicates, for its ``val_source`` line."""
    if groups is None:
        return ""
    copies = int((np.bincount(groups) > 1)[groups].sum())
    if not copies:
        return "; no duplicates in train"
    if kept_out:
        return f"; the {copies} images with an exact or near copy in train stay in train"
    return (f"; WARNING: too few images without a copy to keep the {copies} with one out of validation "
            "(val_grouping content fell back to a plain split)")
