"""Predict expressions with a trained run: ``fer_keras.load_run(path).predict(images)``
(:mod:`fer_keras.predict.predictor`) and the ``fer-predict`` CLI (:mod:`fer_keras.predict.cli`).

Nothing is imported here, so the CLI can reject a bad request before TensorFlow loads.
"""
