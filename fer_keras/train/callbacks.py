"""The protocol's callbacks, made safe to resume and safe on a full disk.

ReduceLROnPlateau(val_loss, patience 10, factor 0.5, min_lr 1e-10), EarlyStopping
(patience 20), best checkpoint by val_accuracy (the fast recipe may choose it by
val_balanced_accuracy: ``checkpoint_metric``), a CSV log, TensorBoard, and an
:class:`EpochBackup` so a killed run loses at most the epoch it was in and resumes with
the state an uninterrupted run would have: weights, optimizer, learning rate, dropout
seeds and the patience counters of ReduceLROnPlateau and EarlyStopping (Keras'
BackupAndRestore restores only the first two, so a resumed run got a fresh patience
window). The best-so-far score is stored beside the checkpoint: a resumed run (or the
second fine-tuning phase) only replaces the checkpoint with a better model.

The fast recipe turns ReduceLROnPlateau off under its cosine schedule and may turn
EarlyStopping off (``null`` patience); with ``ema`` an :class:`EMASwap` puts the
averaged weights in the model for validation and for every checkpoint; with ``batchnorm_recompute``
the BatchNorm statistics are recomputed before every validation (fer_keras.train.batchnorm). Every run writes
its learning curve against wall-clock time (:class:`WallClock`) beside log.csv, which
stays free of timings so a resumed run's log equals an uninterrupted one's; ``train_minutes``
adds a :class:`TimeBudget` that reads the same clock.

Every file is written under a temporary name and renamed (:func:`fer_keras.runs.replacing`):
a full disk or a read-only folder stops the run with an ``OSError`` naming the file and
leaves the last committed epoch (``resume.json``) and the best model valid. Backups are
``.keras`` archives, which Keras assembles in memory: ``save_weights`` writes HDF5 straight
to disk, and HDF5 on a full disk ended in a segmentation fault.

Under MultiWorkerMirroredStrategy only the chief writes (``chief=False`` elsewhere); every
worker resumes from the chief's backup, so the run folder must be on a file system all
workers see.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import keras
import numpy as np

from fer_keras.config import RunConfig
from fer_keras.runs import MODEL_FILE, RESUME_FILE, Run, read_json, replacing, score_file, write_json, write_text
from fer_keras.timing import Stopwatch
from fer_keras.train.batchnorm import RecomputeBatchNorm, StatisticsSwap

#: What ReduceLROnPlateau and EarlyStopping learn across epochs (the attributes they reset on_train_begin).
PATIENCE_STATE = ("wait", "best", "cooldown_counter", "stopped_epoch", "best_epoch")


class BestCheckpoint(keras.callbacks.Callback):
    """The best model so far by ``monitor`` (ModelCheckpoint(save_best_only)), written atomically, whose
    best score (``<name>.json``, written after the model) survives restarts and phases."""

    def __init__(self, filepath: Path, monitor: str = "val_accuracy", mode: str = "max"):
        super().__init__()
        self.filepath, self.monitor = Path(filepath), monitor
        self.score_file = score_file(self.filepath)
        self.better = np.greater if mode == "max" else np.less
        self.best = -np.inf if mode == "max" else np.inf

    def on_train_begin(self, logs=None):
        # A score of another metric (a run begun before the phase's criterion changed) does not count.
        saved = read_json(self.score_file) if self.score_file.is_file() else {}
        if self.monitor in saved:
            self.best = saved[self.monitor]

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if logs and self.monitor not in logs:  # else no checkpoint is ever written, and evaluation fails later
            raise ValueError(f"the checkpoint metric {self.monitor!r} is not among the epoch's logs "
                             f"({', '.join(sorted(logs))}): the model was compiled without it")
        current = logs.get(self.monitor)
        if current is None or not np.isfinite(current) or not self.better(current, self.best):
            return
        with replacing(self.filepath) as tmp:
            self.model.save(tmp)
        self.best = float(current)
        write_json(self.score_file, {self.monitor: self.best, "epoch": epoch + 1})


class EpochLog(keras.callbacks.Callback):
    """CSVLogger's ``log.csv`` (epoch, then the logs' keys sorted), rewritten atomically after every epoch.

    Rows of the epoch being logged and later ones are dropped first: an epoch replayed after a
    crash between the log and the backup is logged once, and a full disk never leaves half a row.
    """

    def __init__(self, path: Path):
        super().__init__()
        self.path = Path(path)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        rows = list(csv.reader(io.StringIO(self.path.read_text()))) if self.path.is_file() else []
        header = rows[0] if rows else ["epoch", *sorted(logs)]
        kept = [row for row in rows[1:] if row and int(row[0]) < epoch]
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerows([header, *kept, [epoch, *(logs.get(key, "NA") for key in header[1:])]])
        write_text(self.path, out.getvalue())


class EpochBackup(keras.callbacks.Callback):
    """After every epoch: the model, optimizer included, in ``epoch<k>.keras``, then ``resume.json``
    (written atomically: the commit point) with the epoch, learning rate, the model's random-seed
    state and the ``stateful`` callbacks' patience state. Older backups are deleted after the commit.

    It must come after the callbacks it saves: it restores them after their own
    ``on_train_begin`` reset them, and saves them after they saw the epoch's logs. With
    ``write=False`` (a worker that is not the chief) it only restores.
    """

    def __init__(self, folder: Path, stateful: list[keras.callbacks.Callback], *, restore_lr: bool = True,
                 write: bool = True):
        super().__init__()
        # restore_lr False: a schedule computes the rate from the (restored) step counter; it cannot be set.
        self.folder, self.stateful, self.restore_lr, self.write = Path(folder), stateful, restore_lr, write
        self.file = self.folder / RESUME_FILE

    def saved(self) -> dict | None:
        return read_json(self.file) if self.file.is_file() else None

    def resume_point(self) -> tuple[int, bool]:
        """(first epoch still to train, whether early stopping had already ended the phase)."""
        state = self.saved()
        return (state["epoch"], state["stopped"]) if state else (0, False)

    def _random_state(self) -> list[keras.Variable]:
        # Dropout's SeedGenerator states: model variables that are not weights (saving skips them).
        weights = {id(w) for w in self.model.weights}
        return [v for v in self.model.variables if id(v) not in weights]

    def on_train_begin(self, logs=None):
        state = self.saved()
        if state is None:
            return
        if not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(self.folder / state["weights"])  # epoch<k>.keras, or .weights.h5 of older runs
        if self.restore_lr:
            self.model.optimizer.learning_rate = state["learning_rate"]
        for var, value in zip(self._random_state(), state["random_state"], strict=True):
            var.assign(np.asarray(value, dtype=var.dtype))
        for cb in self.stateful:
            for name, value in state["callbacks"][type(cb).__name__].items():
                setattr(cb, name, value)

    def on_epoch_end(self, epoch, logs=None):
        if not self.write:
            return
        weights = f"epoch{epoch + 1}.keras"
        self.folder.mkdir(parents=True, exist_ok=True)
        with replacing(self.folder / weights) as tmp:
            self.model.save(tmp)
        write_json(self.file, {
            "epoch": epoch + 1, "weights": weights, "stopped": bool(self.model.stop_training),
            "learning_rate": float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)),
            "random_state": [keras.ops.convert_to_numpy(v).tolist() for v in self._random_state()],
            "callbacks": {type(cb).__name__: {name: _plain(getattr(cb, name)) for name in PATIENCE_STATE
                                              if hasattr(cb, name)} for cb in self.stateful},
        })
        for old in [*self.folder.glob("epoch*.keras"), *self.folder.glob("epoch*.weights.h5")]:
            if old.name != weights:
                old.unlink()


class EMASwap(keras.callbacks.SwapEMAWeights):
    """Keras' SwapEMAWeights(swap_on_epoch=True): validation sees the EMA weights and, as it comes before
    the checkpoint and the backup, so does every saved model. Two fixes for this suite: an epoch backup
    holds the EMA weights in the model, so a resumed phase starts with them there (swapped back before
    training); and a phase that early stopping ends also leaves the EMA weights in the model (Keras
    finalises them only after the last planned epoch)."""

    def __init__(self, backup: EpochBackup, bn_batches: Callable[[], Iterable] | None = None):
        super().__init__(swap_on_epoch=True)
        self.backup = backup
        # With ``bn_batches`` (un-augmented training batches), the EMA weights get BatchNorm statistics
        # recomputed under them (fer_keras.train.batchnorm) instead of the raw weights' ones. A resumed run
        # starts from the backup's EMA weights and statistics; its raw weights reuse those until training
        # updates them (the moving averages settle within an epoch).
        self.statistics = StatisticsSwap(bn_batches) if bn_batches is not None else None

    def on_train_begin(self, logs=None):
        self._ema_weights_in_model = self.backup.saved() is not None

    def _swap_variables(self):
        to_ema = not self._ema_weights_in_model  # the parent updates the flag after each swap
        super()._swap_variables()
        if self.statistics is None:
            return
        if to_ema:
            self.statistics.to_ema(self.model, int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)))
        else:
            self.statistics.to_raw(self.model)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if self.model.stop_training and epoch != self.params["epochs"] - 1:
            self._finalize_ema_values()  # fit's finalize_variable_values then writes the EMA into the model


CURVE_COLUMNS = ("phase", "epoch", "elapsed_s", "accuracy", "val_accuracy", "val_loss", "learning_rate")


def curve_rows_before(file: Path, phase: str, epoch: int) -> list[dict]:
    """The learning curve's rows before 0-based ``epoch`` of ``phase``: a replayed epoch's old row (written
    before a kill, after the last backup) is dropped, so neither its row nor its time counts twice."""
    rows = list(csv.DictReader(io.StringIO(file.read_text()))) if file.is_file() else []
    return [r for r in rows if not (r["phase"] == phase and int(r["epoch"]) >= epoch + 1)]


def training_seconds_before(file: Path, phase: str, epoch: int) -> float:
    """Seconds of training the run had spent before 0-based ``epoch`` of ``phase`` (every earlier phase and
    restart), as its learning curve counts them."""
    kept = curve_rows_before(file, phase, epoch)
    return float(kept[-1]["elapsed_s"]) if kept else 0.0


class WallClock(keras.callbacks.Callback):
    """Appends one row per epoch to ``learning_curve.csv``: ``elapsed_s`` (seconds of training since the
    run began, across phases and restarts; reading the images before fit is not counted), accuracies and
    the learning rate. Also puts ``learning_rate`` in the logs when no callback did (cosine schedule)."""

    def __init__(self, run_dir: Path, phase: str):
        super().__init__()
        self.file, self.phase = Run(run_dir).learning_curve_file, phase

    def on_train_begin(self, logs=None):
        self.offset: float | None = None

    def on_epoch_begin(self, epoch, logs=None):
        if self.offset is None:  # the first epoch of this fit (a fresh phase, or where a resumed run restarts)
            self.offset = training_seconds_before(self.file, self.phase, epoch)
            self.clock = Stopwatch()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        if "learning_rate" not in logs:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        row = {**{k: logs.get(k) for k in CURVE_COLUMNS}, "phase": self.phase, "epoch": epoch + 1,
               "elapsed_s": round(self.offset + self.clock.seconds, 1)}
        # Rewritten atomically like log.csv (EpochLog): a replayed epoch replaces its row, a full disk
        # never leaves half a row.
        kept = curve_rows_before(self.file, self.phase, epoch)
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=CURVE_COLUMNS)
        writer.writeheader()
        writer.writerows([*kept, row])
        write_text(self.file, out.getvalue())


class TimeBudget(keras.callbacks.Callback):
    """Ends training before an epoch that would end past ``minutes`` of training (the run's, every phase and
    restart counted, as learning_curve.csv counts them; the next epoch is assumed to take as long as the
    last, from one epoch's end to the next, so the checkpoint and backup writes count): one budget in
    wall-clock time for models whose epochs cost very different times. Each fitted phase trains at least
    one epoch. The stop is saved like early stopping's (it comes before the :class:`EpochBackup`), so a
    resumed run does not train on. Single-process runs only (``train_run`` refuses it with several
    workers, whose clocks could disagree)."""

    def __init__(self, run_dir: Path, phase: str, minutes: float):
        super().__init__()
        self.file, self.phase, self.minutes = Run(run_dir).learning_curve_file, phase, minutes

    def on_train_begin(self, logs=None):
        self.offset: float | None = None

    def on_epoch_begin(self, epoch, logs=None):
        if self.offset is None:  # the first epoch of this fit: its length runs from its beginning
            self.offset = training_seconds_before(self.file, self.phase, epoch)
            self.clock = Stopwatch()
            self.last_end = 0.0

    def on_epoch_end(self, epoch, logs=None):
        now = self.clock.seconds
        spent, last = self.offset + now, now - self.last_end
        self.last_end = now
        if spent + last > self.minutes * 60:
            self.model.stop_training = True
            print(f"time budget: training stops after epoch {epoch + 1} of phase {self.phase}: {spent / 60:.1f} of "
                  f"{self.minutes:g} min spent, and the next epoch (about {last / 60:.1f} min) would end past it")


def _plain(value):
    # numpy scalars (a monitored loss) as JSON numbers; None and ints as they are.
    return value.item() if isinstance(value, np.generic) else value


def protocol_callbacks(cfg: RunConfig, run_dir: Path, phase: str, *, checkpoint: str = MODEL_FILE,
                       monitor: str = "val_accuracy", mode: str = "max", chief: bool = True,
                       bn_batches: Callable[[], Iterable] | None = None,
                       scorers: Sequence[keras.callbacks.Callback] = ()) -> list[keras.callbacks.Callback]:
    """The protocol's callbacks, the :class:`EpochBackup` last; procedures that train something other
    than the final classifier (a triplet embedding, one ESR stage) checkpoint to their own file and may
    monitor another metric. ``scorers`` put such a metric in the epoch's logs: their ``on_epoch_end``
    runs after the EMA swap (they score the model the checkpoint saves) and before the curve, the
    checkpoint and the log read the logs. A worker that is not the ``chief`` gets only the callbacks
    that steer training, and restores from the chief's backup."""
    run = Run(run_dir)
    patience = []
    if cfg.reduce_lr_patience is not None:
        patience.append(keras.callbacks.ReduceLROnPlateau(monitor="val_loss", patience=cfg.reduce_lr_patience,
                                                          factor=cfg.reduce_lr_factor, min_lr=cfg.min_lr))
    if cfg.early_stopping_patience is not None:
        patience.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.early_stopping_patience))
    backup = EpochBackup(run.backup_dir(phase), patience, restore_lr=cfg.lr_schedule == "plateau", write=chief)
    recompute = bn_batches if cfg.ema_batchnorm == "recompute" else None
    # The budget's stop before the EMA swap, which finalises the averaged weights when it sees training stop.
    stops = [*patience, TimeBudget(run_dir, phase, cfg.train_minutes)] if cfg.train_minutes else patience
    callbacks = [*stops, EMASwap(backup, recompute)] if cfg.ema else [*stops]
    if cfg.batchnorm_recompute:
        if bn_batches is None:
            raise ValueError("batchnorm_recompute needs bn_batches: the un-augmented training batches")
        # Its on_test_begin sets the statistics the validation pass uses; the checkpoint and the backup save
        # the model after that pass, so they keep them. On every worker: the replicas stay identical.
        callbacks.append(RecomputeBatchNorm(bn_batches))
    if not chief:
        return [*callbacks, backup]
    callbacks += [*scorers, WallClock(run_dir, phase), BestCheckpoint(run_dir / checkpoint, monitor=monitor, mode=mode),
                  EpochLog(run.log_file(phase))]
    if cfg.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(str(run.tensorboard_dir(phase)), write_graph=False))
    return [*callbacks, backup]
