"""Benchmarks you can measure: input pipeline, training, inference, TFLite and face crops."""
