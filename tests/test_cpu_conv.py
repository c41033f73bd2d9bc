"""The CPU convolution paths (models/cpu_conv.py) compute the convolution and its gradients of keras' Conv2D."""

import numpy as np
import pytest
import tensorflow as tf

from cycle_medgan_tf.models import cpu_conv
from cycle_medgan_tf.models.cpu_conv import CpuConv2D, narrow_conv2d, patch_matmul_conv2d, plain_convolutions


def _value_and_gradients(fn, x, kernel):
    with tf.GradientTape() as tape:
        tape.watch([x, kernel])
        y = fn(x, kernel)
        loss = tf.reduce_sum(y * tf.sin(y))          # a non-uniform output gradient
    return [y] + tape.gradient(loss, [x, kernel])


def _relative_errors(expected, got):
    return [float(tf.reduce_max(tf.abs(e - g)) / tf.reduce_max(tf.abs(e))) for e, g in zip(expected, got)]


@pytest.mark.parametrize("batch,side,channels,filters,kernel,padding", [
    (1, 20, 5, 1, 7, "valid"),      # the generators' image layer
    (2, 17, 3, 2, 4, "same"),       # the PatchGAN's logits (even kernel: asymmetric 'same' padding)
    (1, 9, 4, 3, 3, "valid")])
def test_narrow_path_matches_the_convolution_and_its_gradients(batch, side, channels, filters, kernel, padding):
    rng = np.random.default_rng(side)
    x = tf.constant(rng.normal(size=(batch, side, side, channels)), tf.float32)
    w = tf.constant(rng.normal(size=(kernel, kernel, channels, filters)), tf.float32)
    expected = _value_and_gradients(lambda a, b: tf.nn.conv2d(a, b, 1, padding.upper()), x, w)
    got = _value_and_gradients(lambda a, b: narrow_conv2d(a, b, padding), x, w)
    assert max(_relative_errors(expected, got)) < 1e-5


def test_narrow_gradients_are_not_the_unflipped_correlation():
    """The check above can fail: the kernel gradient without the flip back is wrong."""
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(1, 12, 12, 3)), tf.float32)
    w = tf.constant(rng.normal(size=(5, 5, 3, 1)), tf.float32)
    dy = tf.constant(rng.normal(size=(1, 8, 8, 1)), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(w)
        y = tf.nn.conv2d(x, w, 1, "VALID")
    expected = tape.gradient(y, w, output_gradients=dy)
    _, dkernel = cpu_conv._patch_gradients(x, w, dy)
    assert float(tf.reduce_max(tf.abs(dkernel - expected))) < 1e-4
    assert float(tf.reduce_max(tf.abs(tf.reverse(dkernel, [0, 1]) - expected))) > 1e-2


@pytest.mark.parametrize("side,strides", [(4, (2, 2)), (3, (1, 1)), (6, (2, 2))])
def test_patch_matmul_path_matches_the_convolution_and_its_gradients(side, strides):
    rng = np.random.default_rng(side)
    x = tf.constant(rng.normal(size=(2, side, side, 16)), tf.float32)
    w = tf.constant(rng.normal(size=(3, 3, 16, 8)), tf.float32)
    expected = _value_and_gradients(lambda a, b: tf.nn.conv2d(a, b, strides, "VALID"), x, w)
    got = _value_and_gradients(lambda a, b: patch_matmul_conv2d(a, b, strides), x, w)
    assert max(_relative_errors(expected, got)) < 1e-5


def _paths(model):
    return {layer.name: layer.path for layer in model.layers if isinstance(layer, CpuConv2D)}


def test_paths_are_chosen_for_the_slow_shapes_only():
    from baselines.unit_networks import build_unit_discriminator
    from cycle_medgan_tf.models.resnet_generator import build_resnet_generator

    generator = _paths(build_resnet_generator(64))
    assert generator["out_conv"] == "narrow"
    assert {name for name, path in generator.items() if path != "plain"} == {"out_conv"}
    discriminator = _paths(build_unit_discriminator(64))
    assert discriminator["conv_5"] == "patch_matmul" and discriminator["conv_0"] == "plain"
    assert _paths(build_resnet_generator(None))["out_conv"] == "narrow"      # any image size
    assert _paths(build_unit_discriminator(None))["conv_5"] == "plain"       # output size unknown
    with plain_convolutions():
        assert set(_paths(build_resnet_generator(64)).values()) == {"plain"}


def test_the_fast_generator_is_the_plain_generator_with_faster_gradients():
    """Same weights, same forward pass, gradients equal to float rounding: checkpoints are interchangeable."""
    from cycle_medgan_tf.models.resnet_generator import build_resnet_generator

    fast = build_resnet_generator(32)
    with plain_convolutions():
        plain = build_resnet_generator(32)
    assert [w.shape for w in fast.weights] == [w.shape for w in plain.weights]
    plain.set_weights(fast.get_weights())
    x = tf.random.stateless_uniform((2, 32, 32, 1), [1, 2], -1.0, 1.0)
    results = []
    for model in (fast, plain):
        with tf.GradientTape() as tape:
            y = model(x, training=True)
            loss = tf.reduce_mean(tf.abs(y - 0.3))
        results.append((y, tape.gradient(loss, model.trainable_variables)))
    (y_fast, g_fast), (y_plain, g_plain) = results
    np.testing.assert_array_equal(y_fast.numpy(), y_plain.numpy())
    for a, b in zip(g_fast, g_plain):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6)
