"""RepVGG: the fused deploy model computes what the training-time model computes."""

from __future__ import annotations

import keras
import numpy as np

from fer_keras.models.repvgg import reparameterize
from fer_keras.registry import build_model


def _randomise_batchnorm(model: keras.Model, rng: np.random.Generator) -> None:
    """Fresh BN layers are identities; random statistics make the fusion test meaningful."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, c),
                    rng.normal(0, 0.1, c),
                    rng.normal(0, 0.1, c),
                    rng.uniform(0.5, 2.0, c),
                ]
            )


def test_reparameterized_model_matches_in_inference_mode():
    keras.utils.set_random_seed(0)
    model = build_model("repvgg", 32)
    _randomise_batchnorm(model, np.random.default_rng(0))
    deployed = reparameterize(model)

    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in deployed.layers)
    assert deployed.count_params() < model.count_params()
    assert deployed.get_layer("predictions").get_config()["units"] == 7

    x = np.random.default_rng(1).uniform(0, 255, size=(2, 32, 32, 3)).astype("float32")
    features = [keras.Model(m.input, m.get_layer("pool").output) for m in (model, deployed)]
    want, got = (np.asarray(f(x, training=False)) for f in features)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    # The fused convolutions sum in another order, so features agree to float32 rounding relative to their
    # size (checked above); through large logits a 1e-4 relative change moves probabilities by ~1e-5,
    # by more or less on another CPU's kernels. A wrong fusion moves them by tenths.
    probs, deployed_probs = np.asarray(model(x, training=False)), np.asarray(deployed(x, training=False))
    np.testing.assert_allclose(deployed_probs, probs, atol=1e-3)
    assert (deployed_probs.argmax(1) == probs.argmax(1)).all()


def test_blocks_have_identity_branches_only_where_shapes_allow():
    model = build_model("repvgg", 32)
    names = {layer.name for layer in model.layers}
    assert "stage0_block1_id_bn" not in names  # stride 2, 3 -> 48 channels
    assert "stage3_block2_id_bn" in names
    assert "stage3_block1_id_bn" not in names
