"""Evaluation: metrics on every image exactly once, confusion matrices, cross-domain runs."""
