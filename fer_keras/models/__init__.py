"""The model zoo: one module per family of builders, listed in ``catalog.py``.

Importing this package builds and imports nothing heavy; ``fer_keras.registry`` imports a
builder's module when the model is first built. Add a model: write a builder in a module
here and add its row to ``catalog.py``. The registry-wide tests pick it up without new
test code.
"""
