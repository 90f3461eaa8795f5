"""Use a trained model: expression labels and per-class probabilities for photos or face crops.

``load_run(path)`` takes a run folder (``best.keras`` + ``classes.json``) or a bare ``.keras``
file. A bare file finds its class names beside it: ``<stem>.classes.json`` (what
:meth:`Predictor.save` writes) or a ``classes.json`` in the same folder. Without either, a
7-output model gets the suite's canonical order (every run in this suite trains in it) with a
warning; any other model is refused, since guessed labels would be silently wrong.

Inputs are RGB on the 0-255 scale and reach the model exactly as evaluation images do: resized
to the model's resolution with antialiasing and rounded to 8 bits (``fer_keras.data.pipeline``),
grey turned into three equal channels; the model normalises them itself. With ``detect_faces``,
MTCNN finds faces first and each is cropped as BTFER's data preparation crops
(``fer_keras.data.faces``: box + 20 px margin, clipped, resized to 256 x 256), then resized as above.

A run evaluated with test-time augmentation (``tta_flip`` / ``tta_zoom`` in its config.yaml, the fast
recipe) predicts with it too, through the evaluator's own function (``fer_keras.evaluate.tta``), so the
probabilities are those its metrics.json was measured on; ``load_run(path, tta=NO_TTA)`` turns it off.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from fer_keras.console import Notice
from fer_keras.data.faces import CropOptions, Face, MTCNNDetector, crop_faces, select_faces
from fer_keras.data.image_types import list_images, too_small
from fer_keras.data.images import BadImageError, open_rgb
from fer_keras.evaluate import prior as prior_correction
from fer_keras.evaluate.prior import PriorCorrection
from fer_keras.evaluate.tta import NO_TTA, TTA, tta_probs
from fer_keras.labels import CANONICAL_CLASSES
from fer_keras.models.preprocessing import preprocessing_mode
from fer_keras.registry import import_zoo
from fer_keras.runs import CLASSES_FILE, MODEL_FILE, Run, load_model_file, read_json, write_json

#: Where the built-in model lives: a run folder's files (best.keras, classes.json, ...).
BUILTIN_MODEL_DIR = Path(__file__).resolve().parent.parent / "pretrained"
#: Suffix of the class-name file written beside a bare ``.keras`` file.
CLASSES_SUFFIX = ".classes.json"
PREDICTOR_SUFFIX = ".predictor.json"  # how a saved model is to be applied: {"tta_flip": bool, "tta_zoom": bool}
NO_FACE = "no face found"
#: Detector confidence a face needs. Stricter than data preparation's 0.9, which a manual pass
#: follows: on skimage's astronaut MTCNN scores the face 0.998 and a patch of her suit 0.934.
MIN_FACE_CONFIDENCE = 0.95
ERRORS = ("raise", "report")


@dataclass(frozen=True)
class Prediction:
    """One face (or one crop) and what the model says about it.

    ``label`` is None when there is nothing to classify; ``error`` then says why
    (an unreadable file, no face found).
    """

    source: str
    label: str | None
    #: Per-class probabilities in the run's class order.
    probabilities: dict[str, float]
    #: Face number within its image (detect_faces), else None.
    face: int | None = None
    #: Detector box (x, y, width, height) in the image's pixels.
    box: tuple[int, int, int, int] | None = None
    face_confidence: float | None = None
    error: str | None = None

    @property
    def probability(self) -> float | None:
        """The probability of ``label``."""
        return self.probabilities[self.label] if self.label is not None else None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "probability": self.probability}


def _rgb(image: np.ndarray, name: str) -> np.ndarray:
    """An HxW, HxWx1, HxWx3 (or RGBA) array as float32 HxWx3 on the 0-255 scale."""
    a = np.asarray(image)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[-1] not in (1, 3, 4) or min(a.shape[:2]) < 1:
        raise ValueError(f"{name}: expected an HxW, HxWx1 or HxWx3 image, got shape {a.shape}")
    if a.dtype.kind == "f" and a.size and float(np.nanmax(a)) <= 1.0 and float(np.nanmax(a)) > 0:
        warnings.warn(f"{name}: float pixels all <= 1; inputs are read on the 0-255 scale", stacklevel=3)
    a = a[..., :3].astype("float32")
    return np.repeat(a, 3, axis=-1) if a.shape[-1] == 1 else a


def _uint8(a: np.ndarray) -> np.ndarray:
    return np.clip(np.round(a), 0, 255).astype(np.uint8)


def _iter_inputs(images: Any) -> Iterator[tuple[str, Path | np.ndarray]]:
    """(name, path or array) for each image: a path, a folder (every image under it, sorted),
    an array (one image, or an N x H x W x C batch), or a list of those."""
    if isinstance(images, (str, Path)):
        path = Path(images)
        if path.is_dir():
            for rel in list_images(path):
                yield str(path / rel), path / rel
        elif path.exists():
            yield str(path), path
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    elif isinstance(images, np.ndarray):
        if images.ndim == 4:
            for i, a in enumerate(images):
                yield f"array[{i}]", a
        else:
            yield "array", images
    elif isinstance(images, Iterable):
        for i, item in enumerate(images):
            if isinstance(item, np.ndarray):
                yield f"array[{i}]", item
            else:
                yield from _iter_inputs(item)
    else:
        raise TypeError(f"cannot read images from a {type(images).__name__}: pass paths, a folder or arrays")


def count_inputs(images: Any) -> int | None:
    """How many images ``images`` holds, when that is cheap to know (for a progress bar)."""
    if isinstance(images, (str, Path)):
        return len(list_images(Path(images))) if Path(images).is_dir() else 1
    if isinstance(images, np.ndarray):
        return len(images) if images.ndim == 4 else 1
    if isinstance(images, (list, tuple)):
        return sum(1 if isinstance(item, np.ndarray) else count_inputs(item) or 0 for item in images)
    return None


class Predictor:
    """A loaded model with its class names; :meth:`predict` turns images into :class:`Prediction`s."""

    def __init__(self, model: keras.Model, classes: Iterable[str], source: Path | None = None, *,
                 tta: TTA = NO_TTA, prior: PriorCorrection | None = None) -> None:
        self.model = model
        self.classes = tuple(classes)
        self.source = source
        #: The test-time views whose probabilities are averaged, as the run's evaluation did.
        self.tta = tta
        #: The run's class-prior correction (logit adjustment for a balanced target), or None: plain probabilities.
        self.prior = prior
        if prior is not None:
            prior.log_prior(self.classes)  # fails now, naming the class, if the prior does not cover the model
        shape = model.input_shape
        if len(shape) != 4 or shape[1] != shape[2] or shape[3] != 3:
            raise ValueError(f"expected a model taking square RGB images, got input shape {shape}")
        self.res = int(shape[1])
        outputs = model.output_shape[-1]
        if outputs != len(self.classes):
            raise ValueError(f"the model has {outputs} outputs but {len(self.classes)} class names "
                             f"{list(self.classes)}")
        self.preprocessing = preprocessing_mode(model)
        self.crop = CropOptions()  # the protocol's: 20 px margin, 256 px, faces >= 20 px, confidence >= 0.9
        self._detector: MTCNNDetector | None = None

    def __repr__(self) -> str:
        return (f"Predictor({self.model.name}, {self.res} px, preprocessing {self.preprocessing}, "
                f"classes {list(self.classes)}, TTA {self.tta.name}, "
                f"prior correction {f'tau {self.prior.tau:g}' if self.prior else 'off'}, from {self.source})")

    def save(self, path: str | Path) -> Path:
        """Write the model as ``path`` (.keras), its class names as ``<stem>.classes.json`` and how to
        apply it (its TTA) as ``<stem>.predictor.json`` beside it, so the copy predicts as this does."""
        path = Path(path)
        if path.suffix != ".keras":
            raise ValueError(f"{path}: the model file must end in .keras")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.model.save(path)
        write_json(path.with_suffix(CLASSES_SUFFIX), list(self.classes))
        settings: dict[str, Any] = dict(self.tta.settings())
        if self.prior is not None:
            settings["prior_correction"] = self.prior.to_json()
        write_json(path.with_suffix(PREDICTOR_SUFFIX), settings)
        return path

    def detect(self, rgb: np.ndarray) -> list[Face]:
        """Faces MTCNN finds in an RGB image (the detector is built on first use)."""
        if self._detector is None:
            self._detector = MTCNNDetector()
        return self._detector(rgb)

    def model_input(self, rgb: np.ndarray) -> np.ndarray:
        """An RGB image resized as the pipeline resizes evaluation images: res x res, rounded to 8 bits."""
        resized = tf.image.resize(rgb.astype("float32"), (self.res, self.res), antialias=True)
        return _uint8(resized.numpy()).astype("float32")

    def probabilities(self, crops: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """(n, classes) probabilities of ``crops`` already at the model's resolution (0-255 RGB), averaged
        over the predictor's test-time views, then prior-corrected if the predictor has a correction."""
        def predict(batch) -> np.ndarray:
            return np.asarray(self.model.predict_on_batch(batch))

        out = [tta_probs(predict, crops[i:i + batch_size], self.tta)
               for i in range(0, len(crops), batch_size)]
        probs = np.concatenate(out) if out else np.zeros((0, len(self.classes)), "float32")
        return self.prior.apply(probs, self.classes) if self.prior is not None and len(probs) else probs

    def _crops(self, name: str, item: Path | np.ndarray, detect_faces: bool,
               min_face_confidence: float) -> list[dict[str, Any]]:
        """Each face (or the whole image) of one input as {'crop', 'face', 'box', 'face_confidence'},
        or one entry with only an 'error'."""
        rgb = np.asarray(open_rgb(item), dtype="float32") if isinstance(item, Path) else _rgb(item, name)
        small = too_small(rgb.shape[1], rgb.shape[0])
        if small:  # skipped and reported, as training and evaluation skip such an image
            raise BadImageError(f"{name}: {small}")
        if not detect_faces:
            return [{"crop": self.model_input(rgb)}]
        image = _uint8(rgb)
        chosen, reason = select_faces(self.detect(image),
                                      CropOptions(select="all", min_confidence=min_face_confidence))
        if not chosen:
            return [{"error": NO_FACE if reason == "no face detected" else f"{NO_FACE}: {reason}"}]
        patches = crop_faces(image, chosen, self.crop)
        return [{"crop": self.model_input(p), "face": i, "box": f.box, "face_confidence": f.confidence}
                for i, (f, p) in enumerate(zip(chosen, patches, strict=True))]

    def predict(self, images: Any, *, detect_faces: bool = False, batch_size: int = 32, errors: str = "raise",
                progress: bool = False, min_face_confidence: float = MIN_FACE_CONFIDENCE) -> list[Prediction]:
        """Predictions for face crops or, with ``detect_faces``, for every face in photos.

        ``images``: a file path, a folder (every image under it), an array (HxW, HxWx1 or
        HxWx3, uint8 or float on 0-255; N x H x W x C for a batch) or a list of those. Results
        come in input order, one per face (faces of at least 20 px and ``min_face_confidence``,
        left to right); an image without one gives one result with ``label=None``.
        ``errors='report'`` turns an unreadable image into such a result instead of raising.
        """
        if errors not in ERRORS:
            raise ValueError(f"errors must be one of {ERRORS}, got {errors!r}")
        results: list[Prediction] = []
        pending: list[tuple[str, dict[str, Any]]] = []

        def flush() -> None:
            crops = [entry["crop"] for _, entry in pending if "crop" in entry]
            probs = iter(self.probabilities(np.stack(crops), batch_size) if crops else [])
            for name, entry in pending:
                if "crop" not in entry:
                    results.append(Prediction(name, None, {}, error=entry["error"]))
                    continue
                p = next(probs)
                results.append(Prediction(
                    name, self.classes[int(np.argmax(p))], dict(zip(self.classes, map(float, p), strict=True)),
                    face=entry.get("face"), box=entry.get("box"), face_confidence=entry.get("face_confidence")))
            pending.clear()

        with tqdm(total=count_inputs(images), unit="img", desc="predict", disable=not progress) as bar:
            for name, item in _iter_inputs(images):
                try:
                    entries = self._crops(name, item, detect_faces, min_face_confidence)
                except BadImageError as e:
                    if errors == "raise":
                        raise
                    entries = [{"error": str(e)}]
                pending += [(name, entry) for entry in entries]
                if sum("crop" in entry for _, entry in pending) >= batch_size:
                    flush()
                bar.update()
        flush()
        return results

    def predict_video(self, path: str | Path, **options: Any) -> Any:
        """Faces found, followed (a stable ``face`` id) and classified in a video file's frames, every
        ``every``-th or ``fps`` a second: a ``VideoResult`` of rows with frame and time. The options and
        errors are :func:`fer_keras.predict.video.predict_video`'s."""
        from fer_keras.predict.video import predict_video

        return predict_video(self, path, **options)


def _classes_for(model_file: Path, outputs: int) -> list[str]:
    for candidate in (model_file.with_suffix(CLASSES_SUFFIX), Run(model_file.parent).classes_file):
        if candidate.is_file():
            return list(read_json(candidate))
    if outputs == len(CANONICAL_CLASSES):
        warnings.warn(f"no {model_file.with_suffix(CLASSES_SUFFIX).name} or {CLASSES_FILE} beside {model_file}; "
                      f"assuming the canonical order {list(CANONICAL_CLASSES)}", Notice, stacklevel=3)
        return list(CANONICAL_CLASSES)
    raise FileNotFoundError(f"{model_file} has {outputs} outputs and no class names: put them, as a JSON list, "
                            f"in {model_file.with_suffix(CLASSES_SUFFIX)}")


def _run_tta(model_file: Path) -> TTA:
    """The TTA ``model_file`` is to be applied with: as :meth:`Predictor.save` recorded it, or as the
    run that saved it as its best model was evaluated (its config, read unvalidated so runs from
    older versions still load); none for a bare model file."""
    sidecar = model_file.with_suffix(PREDICTOR_SUFFIX)
    if sidecar.is_file():
        return TTA.of(read_json(sidecar))
    run = Run(model_file.parent)
    if model_file.resolve() != run.model_file.resolve() or not run.config_file.is_file():
        return NO_TTA
    return TTA.of(run.config_values())


def _run_prior(model_file: Path) -> PriorCorrection | None:
    """The prior correction saved with ``model_file`` (by :meth:`Predictor.save`) or with the run whose best
    model it is (``prior_correction.json``, chosen on its validation split); None if there is none."""
    sidecar = model_file.with_suffix(PREDICTOR_SUFFIX)
    if sidecar.is_file() and "prior_correction" in (saved := read_json(sidecar)):
        return PriorCorrection.from_json(saved["prior_correction"])
    run = Run(model_file.parent)
    return prior_correction.load(run.dir) if model_file.resolve() == run.model_file.resolve() else None


def load_run(path: str | Path | None = None, *, tta: TTA | None = None, prior: bool = False) -> Predictor:
    """A :class:`Predictor` for a run folder, a ``.keras`` file, or (no path) the built-in model.

    ``tta``: the test-time views to average (``fer_keras.evaluate.tta.TTA``); None (default): as the
    run was evaluated (its config's ``tta_flip`` / ``tta_zoom``), so predictions match its metrics.json.
    ``prior``: apply the run's class-prior correction (logit adjustment, tau chosen on its validation split;
    ``fer_keras.evaluate.prior``): for a balanced target rather than the training set's class mix.
    """
    if path is None:
        if not Run(BUILTIN_MODEL_DIR).model_file.is_file():
            raise FileNotFoundError(f"no built-in model is installed (looked for {Run(BUILTIN_MODEL_DIR).model_file}); "
                                    "pass a run folder or a .keras file")
        path = BUILTIN_MODEL_DIR
    path = Path(path)
    if path.is_dir():
        model_file = Run(path).model_file
        if not model_file.is_file():
            raise FileNotFoundError(f"{path} holds no {MODEL_FILE}: not a trained run folder "
                                    "(a run saves it after its first epoch)")
    elif path.is_file():
        if path.suffix != ".keras":
            raise ValueError(f"{path} is not a .keras model file or a run folder")
        model_file = path
    else:
        raise FileNotFoundError(f"{path}: no such run folder or model file")
    import_zoo()  # registers the classes of non-portable models (esr) and old runs

    model = load_model_file(model_file)  # a truncated or corrupt file says so, with its size
    correction = _run_prior(model_file) if prior else None
    if prior and correction is None:
        raise FileNotFoundError(f"{path} has no prior correction ({prior_correction.FILE_NAME} beside "
                                f"{model_file.name}): choose one with `python -m fer_keras.evaluate.prior "
                                f"{model_file.parent}`")
    return Predictor(model, _classes_for(model_file, model.output_shape[-1]), source=path,
                     tta=_run_tta(model_file) if tta is None else tta, prior=correction)
