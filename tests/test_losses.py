"""Loss functions: zero for identical inputs, positive otherwise; Gram normalisation against NumPy; gradients of
each Cycle-MedGAN loss reach every generator variable through the frozen extractor, which does not change."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from cycle_medgan_tf import losses
from cycle_medgan_tf.models.bigan import feature_extractor_from_weights
from cycle_medgan_tf.models.resnet_generator import build_resnet_generator

WEIGHTS = [1.0, 1.0, 1.0, 1.0]


@pytest.fixture(scope="module")
def extractor():
    tf.keras.utils.set_random_seed(0)
    return feature_extractor_from_weights(None, None)


def _images(seed, n=2, size=32):
    return tf.random.stateless_uniform((n, size, size, 1), seed=[seed, 0], minval=-1, maxval=1)


def test_gram_matrix_matches_numpy():
    feats = np.random.default_rng(0).normal(size=(2, 5, 6, 7)).astype(np.float32)
    expected = np.stack([f.reshape(-1, 7).T @ f.reshape(-1, 7) / (5 * 6 * 7) for f in feats])
    np.testing.assert_allclose(losses.gram_matrix(feats).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_style_loss_is_squared_frobenius_of_gram_difference():
    rng = np.random.default_rng(1)
    f1, f2 = rng.normal(size=(2, 2, 4, 4, 3)).astype(np.float32)
    g = lambda f: np.stack([x.reshape(-1, 3).T @ x.reshape(-1, 3) / 48 for x in f])
    expected = np.mean(np.sum((g(f1) - g(f2)) ** 2, axis=(1, 2)))
    got = losses.cycle_style_loss([f1], [f2], [1.0]).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_each_loss_zero_for_identical_and_positive_otherwise(extractor):
    x, y = _images(1), _images(2)
    fx, fy = extractor(x), extractor(y)
    assert losses.l1(x, x).numpy() == 0 and losses.l1(x, y).numpy() > 0
    assert losses.cycle_perceptual_loss(fx, fx, WEIGHTS).numpy() == 0
    assert losses.cycle_perceptual_loss(fx, fy, WEIGHTS).numpy() > 0
    assert losses.cycle_style_loss(fx, fx, WEIGHTS).numpy() == 0
    assert losses.cycle_style_loss(fx, fy, WEIGHTS).numpy() > 0
    ones, zeros = tf.ones((2, 4, 4, 1)), tf.zeros((2, 4, 4, 1))
    assert losses.lsgan_generator_loss(ones).numpy() == 0 and losses.lsgan_generator_loss(zeros).numpy() == 1
    assert losses.lsgan_discriminator_loss(ones, zeros).numpy() == 0
    assert losses.lsgan_discriminator_loss(zeros, ones).numpy() == 1
    np.testing.assert_allclose(losses.nonsaturating_generator_loss(zeros).numpy(), np.log(2), rtol=1e-6)
    np.testing.assert_allclose(losses.kl_loss(tf.fill((3, 2), 2.0)).numpy(), 4.0)


def test_layer_weights_select_layers(extractor):
    fx, fy = extractor(_images(3)), extractor(_images(4))
    total = losses.cycle_perceptual_loss(fx, fy, WEIGHTS).numpy()
    parts = [losses.cycle_perceptual_loss(fx, fy, [1.0 if j == i else 0.0 for j in range(4)]).numpy() for i in range(4)]
    np.testing.assert_allclose(total, sum(parts), rtol=1e-5)


@pytest.mark.parametrize("which", ["perceptual", "style"])
def test_feature_loss_gradients_reach_every_generator_variable(extractor, which):
    tf.keras.utils.set_random_seed(1)
    g_ab, g_ba = build_resnet_generator(None, 1, name="g_ab"), build_resnet_generator(None, 1, name="g_ba")
    x = _images(5, n=1, size=32)
    before = [w.numpy().copy() for w in extractor.weights]
    loss_fn = losses.cycle_perceptual_loss if which == "perceptual" else losses.cycle_style_loss
    variables = g_ab.trainable_variables + g_ba.trainable_variables
    with tf.GradientTape() as tape:
        rec = g_ba(g_ab(x, training=True), training=True)
        loss = loss_fn([tf.stop_gradient(f) for f in extractor(x)], extractor(rec), WEIGHTS)
    grads = tape.gradient(loss, variables)
    assert len(extractor.trainable_variables) == 0
    missing = [v.path for v, g in zip(variables, grads) if g is None or not np.any(g.numpy())]
    assert not missing, f"no gradient reaches {missing[:5]}"
    tf.keras.optimizers.Adam(1e-3).apply_gradients(zip(grads, variables))
    for w, b in zip(extractor.weights, before):
        np.testing.assert_array_equal(w.numpy(), b)
