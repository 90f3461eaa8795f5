"""The model zoo. Importing this package registers every architecture.

Add a model: write a builder in a module here, decorate it with
``@register_model(...)``, and import the module below. The registry-wide tests
pick it up without new test code.
"""

from fer_keras.models import (  # noqa: F401
    classic,
    ensemble,
    esr,
    googlenet,
    keras_apps,
    modular,
    repvgg,
    resmasking,
    resnet,
    se_resnet,
    sequential,
    smmb,
    tlf,
    vggface,
    vgglite,
)
