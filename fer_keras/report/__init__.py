"""The report: the paper's tables, figures and an HTML page, built from run folders alone.

Nothing here imports TensorFlow or Keras except ``gradcam`` (loaded only on request).
"""
