"""TLF-ResNet18: a triplet-loss embedding with a linear classifier (Haider et al., Sensors 2023).

ResNet-18 learns an embedding (its global-average-pooled features, batch-normalised, then
L2-normalised) with the triplet loss; a linear classifier fitted on the training embeddings (linear SVM;
LDA and softmax regression as alternatives, option ``head``) classifies them. Training
is :mod:`fer_keras.train.triplet`.

The fitted classifier is stored *inside* the Keras model: its weights become the Dense
layer ``head_decision`` (kernel = ``coef_.T``, bias = ``intercept_``), followed by a
softmax named ``predictions``. The model's argmax is the classifier's prediction. For
``head="logreg"`` the softmax is the classifier's own probability; for the SVM and LDA it
is a softmax over decision values, a pseudo-probability that ranks classes correctly but
is not calibrated (AUC uses it as a score).

The BatchNormalization before the L2 normalisation (``embedding_bn``) is needed: the pooled
features follow a ReLU, so they are all >= 0 and share one large mean direction; L2-normalised
as they are, every face lands in a narrow cone (squared distances ~0.01 at initialisation,
against a margin of 0.2), the triplet loss sits at the margin and training collapses the
embedding to one point. Centred and scaled per feature, the embeddings span the sphere.

The embedding is the model's ``features`` layer, so the triplet phase trains
``features.feature_extractor(model)`` like any family's feature extractor.
"""

from __future__ import annotations

import keras
from keras import layers

from fer_keras.models._blocks import BN_MOMENTUM
from fer_keras.models._head import check_option, image_input
from fer_keras.models.features import features
from fer_keras.models.resnet import resnet_features
from fer_keras.registry import PREDICTIONS

EMBEDDING = "embedding"
DECISION = "head_decision"


def tlf_resnet18(input_shape, num_classes, *, pretrain="scratch", pooling="gap", weights_dir=None,
                 head: str, margin: float, mining: str) -> keras.Model:
    """``head``, ``margin`` and ``mining`` configure the training procedure (checked by the catalog's
    option schema, like every option)."""
    check_option("pooling (the embedding pools globally)", pooling, ("gap",))
    inputs, x = image_input(input_shape)
    x = resnet_features(x, input_shape[0])
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name="embedding_bn")(x)  # out of the ReLU cone
    x = features(layers.UnitNormalization(name=EMBEDDING)(x))
    x = layers.Dense(num_classes, name=DECISION)(x)  # replaced by the fitted linear classifier
    outputs = layers.Softmax(name=PREDICTIONS, dtype="float32")(x)
    return keras.Model(inputs, outputs, name="tlf_resnet18")
