"""``python -m fer_keras.models``: same as ``fer-models`` (fer_keras.models_cli), but TensorFlow's
start-up lines show, since importing the package loads it before any flag is read."""

from fer_keras.models_cli import main

if __name__ == "__main__":
    main()
