"""The paper column: the published number beside ours, read from a reference CSV the user names.

The CSV is the format of the BTFER paper's public notebooks (one row per notebook):
``config,dataset,model,best_val_acc,btfer_acc_pct``. The suite ships none of those
numbers; ``fer-report --paper-csv FILE`` reads them. Notebook names are mapped to ours by
the explicit tables below; a row whose model, dataset or config is not in them is ignored
and counted, so a new notebook name never lands on the wrong model silently.

What is compared:
- ``best_val_acc`` with our **test** accuracy: the notebooks validated on the dataset's
  test folder, so their best validation accuracy is a test accuracy. They did not set aside
  the test images that copy a training image, so both our test accuracy and our
  deduplicated one (``test_dedup_accuracy``) stand beside it.
- ``btfer_acc_pct / 100`` with our cross-domain accuracy, only for runs whose cross-domain
  set is ``btfer`` (the notebooks scored 2,048 of BTFER's 2,100 images).

Several notebooks that map to the same point (``EfficientNet`` and ``EfficientNetV2``,
``Modular`` and ``MNN - Modular`` in one folder): the name listed first in ``MODEL_NAMES``
counts (the one closest to our model), then the first row in the file; the others are
counted as duplicates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

#: Notebook model name (case-insensitive) -> (registry model, initialisation). ``None`` as the
#: initialisation: the notebook's name does not say, so the number stands beside our rows of every
#: initialisation of that model; a notebook whose name does say wins over it for that one.
MODEL_NAMES: dict[str, tuple[str, str | None]] = {
    # Self-designed models. "Sequential 1" is Sequential Simple as far as the folder layout shows.
    "sequential 1": ("sequential_simple", "scratch"),
    "sequential": ("sequential_simple", "scratch"),
    "conv3": ("sequential_3conv", "scratch"),
    "conv4": ("sequential_4conv", "scratch"),
    "ensemble": ("ensemble", "scratch"),
    "modular": ("modular", "scratch"),
    "mnn - modular": ("modular", "scratch"),
    "modular - mnn": ("modular", "scratch"),
    "smmb": ("smmb", "scratch"),
    # Classic and from-scratch architectures (the registry has them from scratch only).
    "lenet": ("lenet5", "scratch"),
    "alexnet": ("alexnet", "scratch"),
    "zfnet": ("zfnet", "scratch"),
    "zf_net": ("zfnet", "scratch"),
    "vggnet": ("vggnet", "scratch"),
    "repvgg": ("repvgg", "scratch"),
    "resnet18": ("resnet18", "scratch"),
    "googlenet": ("googlenet", "scratch"),
    # keras.applications models: the initialisation where the name gives it.
    "vgg16 - imagenet": ("vgg16", "imagenet"),
    "vgg16 - scratch": ("vgg16", "scratch"),
    "vgg - scratch": ("vgg16", "scratch"),
    "vgg16 - vggface": ("vgg16", "vggface"),
    "vgg19": ("vgg19", None),
    "resnet50 - imagenet": ("resnet50", "imagenet"),
    "resnet50 - vggface": ("resnet50", "vggface"),
    "resnet50": ("resnet50", None),
    "senet": ("senet50", "vggface"),  # SENet50 weights come from VGGFace2 (keras-vggface)
    "senet50": ("senet50", "vggface"),
    "mobilenet": ("mobilenet", None),
    "mobilenetv2": ("mobilenet_v2", None),
    "mobilnetv2": ("mobilenet_v2", None),
    "densenet121": ("densenet121", None),
    "densenet 121": ("densenet121", None),
    "densene121": ("densenet121", None),
    "efficientnetv2": ("efficientnet_v2_b0", None),
    "efficientnet": ("efficientnet_v2_b0", None),  # the paper names EfficientNetV2-B0 only
    "nasnet": ("nasnet_mobile", None),
    "nasnet mobile": ("nasnet_mobile", None),
    "inceptionv3": ("inception_v3", None),
    "xception": ("xception", None),
}
# Deliberately unmapped: "Resnet18 2" (a second attempt beside "Resnet18"), "VGG - Scratch/VGG19"
# (names two models), and models not in the registry: MNIST_NET, Mediapipe CNN, Model 9, Model 10,
# EfficientNet MultiTask.

#: Notebook dataset name (case-insensitive) -> our dataset folder name.
DATASET_NAMES = {"fer2013": "fer2013", "rafdb": "rafdb", "affectnet 7": "affectnet"}
#: ``48 x 48 - Conservative``, ``224 x 224 - SIMPLE``: resolution and class weights.
CONFIG_PATTERN = re.compile(r"^\s*(\d+)\s*x\s*\1\s*-\s*(conservative|simple)\s*$", re.IGNORECASE)
#: Cross-domain set the notebooks' ``btfer_acc_pct`` is about.
PAPER_CROSS_SET = "btfer"
#: Columns added to the summary (tables.DISPLAY shows them beside ours).
PAPER_COLUMNS = ("paper_test_accuracy", "test_accuracy_vs_paper", "test_dedup_accuracy_vs_paper",
                 "paper_cross_accuracy", "cross_accuracy_vs_paper")
KEY = ["model", "res", "dataset", "balance", "pretrain"]


@dataclass
class PaperReference:
    """The mapped reference rows and what was left out."""

    path: Path
    rows: pd.DataFrame  # KEY + paper_test_accuracy, paper_cross_accuracy
    total: int
    unmapped: int
    duplicates: int

    def summary(self) -> str:
        return (f"paper column: {len(self.rows)} of {self.total} rows of {self.path} mapped; "
                f"{self.unmapped} unmapped and {self.duplicates} duplicate row(s) ignored.")


def _map_row(config: str, dataset: str, model: str) -> tuple | None:
    m = CONFIG_PATTERN.match(str(config))
    name = MODEL_NAMES.get(str(model).strip().casefold())
    ours = DATASET_NAMES.get(str(dataset).strip().casefold())
    if m is None or name is None or ours is None:
        return None
    return name[0], int(m.group(1)), ours, m.group(2).lower(), name[1]


def read_reference(path: str | Path) -> PaperReference:
    """Read and map a reference CSV (``config,dataset,model,best_val_acc,btfer_acc_pct``)."""
    path = Path(path)
    raw = pd.read_csv(path)
    missing = {"config", "dataset", "model", "best_val_acc", "btfer_acc_pct"} - set(raw.columns)
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    keys = [_map_row(c, d, m) for c, d, m in zip(raw["config"], raw["dataset"], raw["model"], strict=True)]
    priority = {name: i for i, name in enumerate(MODEL_NAMES)}
    mapped = raw.assign(_key=keys, _rank=[priority.get(str(m).strip().casefold()) for m in raw["model"]])
    mapped = mapped[[k is not None for k in keys]].sort_values("_rank", kind="stable")
    rows = pd.DataFrame(mapped["_key"].tolist(), columns=KEY, index=mapped.index)
    rows["paper_test_accuracy"] = pd.to_numeric(mapped["best_val_acc"], errors="coerce")
    rows["paper_cross_accuracy"] = pd.to_numeric(mapped["btfer_acc_pct"], errors="coerce") / 100
    unique = rows.drop_duplicates(subset=KEY, keep="first").reset_index(drop=True)
    return PaperReference(path, unique, len(raw), len(raw) - len(rows), len(rows) - len(unique))


def add_paper_columns(summary: pd.DataFrame, runs: pd.DataFrame, ref: PaperReference) -> pd.DataFrame:
    """``summary`` with the paper's numbers and our difference from them (ours - paper)."""
    out = summary.copy()
    cross_sets = runs.groupby("group")["cross_set"].agg(lambda s: set(s.dropna().astype(str).str.lower()))
    exact = ref.rows.dropna(subset=["pretrain"]).set_index(KEY)
    any_init = ref.rows[ref.rows["pretrain"].isna()].set_index(KEY[:-1])
    test, cross = [], []
    for _, row in out.iterrows():
        key = (row["model"], int(row["res"]), str(row["dataset"]), str(row["balance"]))
        if (*key, str(row["pretrain"])) in exact.index:
            hit = exact.loc[(*key, str(row["pretrain"]))]
        elif key in any_init.index:
            hit = any_init.loc[key]
        else:
            hit = None
        on_btfer = cross_sets.get(row["group"], set()) == {PAPER_CROSS_SET}
        test.append(np.nan if hit is None else hit["paper_test_accuracy"])
        cross.append(np.nan if hit is None or not on_btfer else hit["paper_cross_accuracy"])
    out["paper_test_accuracy"] = test
    out["test_accuracy_vs_paper"] = out["test_accuracy"] - out["paper_test_accuracy"]
    # The notebooks scored every test image, copies of training images included: ours both ways.
    dedup = out["test_dedup_accuracy"] if "test_dedup_accuracy" in out else np.nan
    out["test_dedup_accuracy_vs_paper"] = dedup - out["paper_test_accuracy"]
    out["paper_cross_accuracy"] = cross
    out["cross_accuracy_vs_paper"] = out["cross_accuracy"] - out["paper_cross_accuracy"]
    return out
