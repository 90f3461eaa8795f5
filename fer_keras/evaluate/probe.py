"""A callback that looks at the test split after every epoch (``make realcheck``); it decides nothing."""

from __future__ import annotations

import keras
import numpy as np

from fer_keras.config import RunConfig
from fer_keras.data.readers import ImageSet
from fer_keras.evaluate.evaluator import predict_probs
from fer_keras.evaluate.metrics import classification_metrics
from fer_keras.runs import Run
from fer_keras.timing import Stopwatch


class EpochTestProbe(keras.callbacks.Callback):
    """After every epoch: test accuracy, balanced accuracy and predicted class shares, printed."""

    def __init__(self, test: ImageSet, cfg: RunConfig, batch: int = 256):
        super().__init__()
        self.test, self.cfg, self.batch = test, cfg, batch
        self.rows: list[dict] = []
        self.clock = Stopwatch()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        probs = predict_probs(self.model, self.test, self.cfg.res, batch=self.batch, pipeline=self.cfg.pipeline,
                              model_classes=Run(self.cfg.run_dir()).classes())
        m = classification_metrics(self.test.labels, probs, self.test.class_names)
        predicted = np.asarray(m["confusion_matrix"]).sum(axis=0) / m["n"]
        row = {"epoch": epoch + 1, "minutes": self.clock.minutes,
               "train_acc": logs.get("accuracy"), "val_acc": logs.get("val_accuracy"),
               "test_acc": m["accuracy"], "test_bal_acc": m["balanced_accuracy"],
               "shares": dict(zip(self.test.class_names, predicted.round(3).tolist(), strict=True)),
               "collapsed": m["collapsed"]}
        self.rows.append(row)
        shares = " ".join(f"{c[:3]} {s:.2f}" for c, s in row["shares"].items())
        print(f"realcheck epoch {row['epoch']:>2} ({row['minutes']:5.1f} min): train {row['train_acc']:.3f} "
              f"val {row['val_acc']:.3f} test {row['test_acc']:.3f} (balanced {row['test_bal_acc']:.3f}) | "
              f"predicted shares: {shares}", flush=True)
