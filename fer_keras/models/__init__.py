"""The model zoo. Importing this package registers every architecture.

Add a model: write a builder in a module here, decorate it with
``@register_model(...)``, and import the module below. The registry-wide tests
pick it up without new test code.
"""

from fer_keras.models import esr, resmasking, resnet, se_resnet, sequential, tlf  # noqa: F401
