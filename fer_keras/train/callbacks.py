"""The protocol's callbacks, made safe to resume.

ReduceLROnPlateau(val_loss, patience 10, factor 0.5, min_lr 1e-10), EarlyStopping
(patience 20), best checkpoint by val_accuracy, CSVLogger, TensorBoard, and
BackupAndRestore so a killed run loses at most the epoch it was in. The best-so-far
score is stored beside the checkpoint: a resumed run (or the second fine-tuning
phase) only replaces the checkpoint with a better model.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np

from fer_keras.config import RunConfig


class BestCheckpoint(keras.callbacks.ModelCheckpoint):
    """ModelCheckpoint(save_best_only) whose best score survives restarts and phases."""

    def __init__(self, filepath: Path, monitor: str = "val_accuracy", mode: str = "max"):
        super().__init__(str(filepath), monitor=monitor, mode=mode, save_best_only=True, verbose=0)
        self.score_file = Path(filepath).with_suffix(".json")

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.score_file.is_file():
            self.best = json.loads(self.score_file.read_text())[self.monitor]

    def on_epoch_end(self, epoch, logs=None):
        before = self.best
        super().on_epoch_end(epoch, logs)
        if self.best != before and np.isfinite(self.best):
            tmp = self.score_file.with_suffix(".tmp")
            tmp.write_text(json.dumps({self.monitor: float(self.best), "epoch": epoch + 1}))
            tmp.replace(self.score_file)


def protocol_callbacks(cfg: RunConfig, run_dir: Path, phase: str, *, checkpoint: str = "best.keras",
                       monitor: str = "val_accuracy", mode: str = "max") -> list[keras.callbacks.Callback]:
    """The protocol's callbacks; procedures that train something other than the final classifier
    (a triplet embedding, one ESR stage) checkpoint to their own file and may monitor another metric."""
    log = run_dir / ("log.csv" if phase == "main" else f"log_{phase}.csv")
    callbacks = [
        keras.callbacks.BackupAndRestore(str(run_dir / "backup" / phase), delete_checkpoint=False),
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", patience=cfg.reduce_lr_patience,
                                          factor=cfg.reduce_lr_factor, min_lr=cfg.min_lr),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.early_stopping_patience),
        BestCheckpoint(run_dir / checkpoint, monitor=monitor, mode=mode),
        keras.callbacks.CSVLogger(str(log), append=True),
    ]
    if cfg.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(str(run_dir / "tensorboard" / phase), write_graph=False))
    return callbacks
