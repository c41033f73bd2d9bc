"""Architecture tests: exact parameter counts, shapes, layer maths, gradients, summary CLI."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from baselines.unit_networks import build_unit_networks, build_unit_translator
from cycle_medgan_tf.models import layers as model_layers
from cycle_medgan_tf.models.bigan import (
    FEATURE_LAYER_NAMES,
    build_bigan,
    build_feature_extractor,
    feature_extractor_from_weights,
    image_path_weights,
)
from cycle_medgan_tf.models.patchgan import build_patchgan_discriminator
from cycle_medgan_tf.models.registry import build_models, count_params, forward_flops
from cycle_medgan_tf.models.resnet_generator import build_resnet_generator

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UNIT_COUNTS = {
    "encoder_a": 3_915_776, "encoder_b": 3_915_776,
    "shared_encoder": 1_181_184, "shared_generator": 1_181_184,
    "decoder_a": 3_912_449, "decoder_b": 3_912_449,
    "discriminator_a": 25_147_905, "discriminator_b": 25_147_905,
}
EXTRACTOR_PARAMS = 16 * (1 * 64 + 64 * 128 + 128 * 256 + 256 * 512) + (64 + 128 + 256 + 512)


def _images(n, size, channels=1, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, size, size, channels)).astype("float32")


def _symbolic_shape(model, shape):
    return tuple(model(keras.Input(batch_shape=(1, *shape))).shape)


@pytest.fixture(scope="module")
def cyclegan():
    return build_models("cyclegan", None, 1)


@pytest.fixture(scope="module")
def unit():
    return build_unit_networks(None, 1)


@pytest.fixture(scope="module")
def bigan():
    return build_bigan(64)


# --- exact parameter counts -------------------------------------------------------------

@pytest.mark.parametrize("channels, gen_count, disc_count",
                         [(1, 11_370_880, 2_763_520), (3, 11_383_424, 2_765_568)])
def test_cyclegan_parameter_counts(channels, gen_count, disc_count):
    assert count_params(build_resnet_generator(None, channels)) == gen_count
    assert count_params(build_patchgan_discriminator(None, channels)) == disc_count


def test_cyclegan_registry_parts(cyclegan):
    assert set(cyclegan) == {"generator_a2b", "generator_b2a", "discriminator_a", "discriminator_b"}
    assert count_params(cyclegan["generator_b2a"]) == 11_370_880
    assert set(build_models("cycle_medgan", 64)) == set(cyclegan)


def test_unit_parameter_counts(unit):
    assert {k: count_params(m) for k, m in unit.items()} == UNIT_COUNTS
    translator = build_unit_translator(unit, "b")
    expected = sum(UNIT_COUNTS[k] for k in ("encoder_b", "shared_encoder", "shared_generator",
                                           "decoder_a"))
    assert count_params(translator) == expected


def test_generator_has_no_biases_and_unit_convs_do(cyclegan, unit):
    conv_types = (keras.layers.Conv2D, keras.layers.Conv2DTranspose)
    for model in (cyclegan["generator_a2b"], cyclegan["discriminator_a"]):
        assert not any(layer.use_bias for layer in model.layers if isinstance(layer, conv_types))
    for model in unit.values():
        assert all(layer.use_bias for layer in model.layers if isinstance(layer, conv_types))


# --- shapes -----------------------------------------------------------------------------

@pytest.mark.parametrize("size", [64, 68])
def test_cyclegan_forward_shapes_and_range(cyclegan, size):
    x = _images(2, size)
    y = cyclegan["generator_a2b"](x)
    assert y.shape == (2, size, size, 1) and y.dtype == tf.float32
    assert np.all(np.abs(y.numpy()) < 1.0)
    logits = cyclegan["discriminator_a"](x)
    assert logits.shape == (2, -(-size // 8), -(-size // 8), 1) and logits.dtype == tf.float32


def test_generator_with_fixed_size_and_none_dims_agree(cyclegan):
    fixed = build_resnet_generator(68, 1)
    fixed.set_weights(cyclegan["generator_a2b"].get_weights())
    x = _images(1, 68, seed=3)
    np.testing.assert_allclose(fixed(x), cyclegan["generator_a2b"](x), atol=1e-5)
    assert cyclegan["generator_a2b"].input_shape == (None, None, None, 1)
    # A non-square input also works when both sides are multiples of 4.
    assert cyclegan["generator_a2b"](np.zeros((1, 64, 72, 1), "float32")).shape == (1, 64, 72, 1)


def test_strided_same_conv_sizes(cyclegan):
    """TF 'SAME' stride 2 gives ceil(h / 2): 68 -> 34 -> 17 inside the generator."""
    g = cyclegan["generator_a2b"]
    probe = keras.Model(g.input, [g.get_layer(n).output for n in ("e2_conv", "e3_conv", "d1_conv")])
    shapes = [tuple(t.shape) for t in probe(keras.Input(batch_shape=(1, 68, 68, 1)))]
    assert shapes == [(1, 34, 34, 128), (1, 17, 17, 256), (1, 34, 34, 128)]
    for side in (5, 6, 7, 17):
        conv = model_layers.conv2d(1, 3, 2, "same")
        assert conv(np.zeros((1, side, side, 1), "float32")).shape[1] == -(-side // 2)


@pytest.mark.parametrize("size, patch", [(64, 1), (68, 2), (128, 2), (256, 4)])
def test_unit_decoderriminator_patch_sizes(unit, size, patch):
    assert _symbolic_shape(unit["discriminator_a"], (size, size, 1)) == (1, patch, patch, 1)


@pytest.mark.parametrize("size", [64, 68])
def test_unit_translation_shapes_and_range(unit, size):
    x = _images(2, size)
    for source in ("a", "b"):
        y = build_unit_translator(unit, source)(x)
        assert y.shape == (2, size, size, 1) and y.dtype == tf.float32
        assert np.all(np.abs(y.numpy()) < 1.0)
    mu = unit["shared_encoder"](unit["encoder_a"](x))
    assert mu.shape == (2, -(-size // 4), -(-size // 4), 256)
    assert unit["discriminator_b"](x).dtype == tf.float32


def test_unit_translator_is_deterministic_and_shares_weights(unit):
    translator = build_unit_translator(unit, "a")
    x = _images(1, 64, seed=5)
    np.testing.assert_array_equal(translator(x), translator(x))
    manual = unit["decoder_b"](unit["shared_generator"](unit["shared_encoder"](unit["encoder_a"](x))))
    np.testing.assert_allclose(translator(x), manual, atol=1e-6)
    with pytest.raises(ValueError):
        build_unit_translator(unit, "c")


def test_bigan_shapes(bigan):
    x = tf.constant(_images(3, 64))
    z = bigan["encoder"](x)
    assert z.shape == (3, 200)
    x_gen = bigan["generator"](tf.random.normal((3, 200)))
    assert x_gen.shape == (3, 64, 64, 1) and np.all(np.abs(x_gen.numpy()) < 1.0)
    assert bigan["discriminator"]([x, z]).shape == (3, 1)
    with pytest.raises(ValueError):
        build_bigan(48)


def test_outputs_are_float32_under_mixed_precision():
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        nets = build_models("cyclegan", None, 1)
        unit_decoder = build_unit_networks(None, 1)["decoder_a"]
    finally:
        keras.config.set_dtype_policy("float32")
    assert nets["generator_a2b"].get_layer("r1_conv1").compute_dtype == "bfloat16"
    y = nets["generator_a2b"](_images(1, 64))
    assert y.dtype == tf.float32 and np.all(np.isfinite(y.numpy()))
    assert nets["discriminator_a"](y).dtype == tf.float32
    assert unit_decoder(np.zeros((1, 16, 16, 256), "float32")).dtype == tf.float32


# --- layers -----------------------------------------------------------------------------

def _instance_norm_reference(x, scale, offset, eps=1e-5):
    mean = x.mean(axis=(1, 2), keepdims=True)
    var = x.var(axis=(1, 2), keepdims=True)
    return scale * (x - mean) / np.sqrt(var + eps) + offset


def test_instance_norm_matches_numpy():
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(3, 6, 5, 4)) * [1, 3, 0.1, 20] + [0, 5, -2, 50]).astype("float32")
    layer = model_layers.InstanceNormalization()
    layer.build(x.shape)
    scale, offset = rng.normal(1, 0.3, 4).astype("float32"), rng.normal(0, 1, 4).astype("float32")
    layer.set_weights([scale, offset])
    np.testing.assert_allclose(layer(x), _instance_norm_reference(x, scale, offset),
                               rtol=1e-4, atol=1e-4)
    # A constant channel maps to its offset (epsilon keeps it finite).
    constant = np.full((1, 4, 4, 4), 7.0, "float32")
    np.testing.assert_allclose(layer(constant)[0, 0, 0], offset, atol=1e-5)


@pytest.mark.parametrize("batch", [1, 3])
def test_fused_instance_norm_matches_moments_forward_and_gradients(batch):
    """The fused kernel (and its batch > 1 channel folding) equals the textbook formula, gradients included."""
    rng = np.random.default_rng(3)
    x = tf.constant((rng.normal(size=(batch, 9, 7, 5)) * [1, 3, 0.1, 20, 2] + [0, 5, -2, 50, 1]).astype("float32"))
    scale = tf.constant(rng.normal(1, 0.3, 5).astype("float32"))
    offset = tf.constant(rng.normal(0, 1, 5).astype("float32"))
    weight = tf.constant(rng.normal(size=x.shape).astype("float32"))

    def textbook(x, scale, offset):
        mean, var = tf.nn.moments(x, axes=[1, 2], keepdims=True)
        return (x - mean) * tf.math.rsqrt(var + 1e-5) * scale + offset

    results = []
    for fn in (model_layers.instance_norm, textbook):
        with tf.GradientTape() as tape:
            tape.watch([x, scale, offset])
            y = fn(x, scale, offset)
            loss = tf.reduce_sum(y * weight)
        results.append([y, *tape.gradient(loss, [x, scale, offset])])
    for fused, reference in zip(*results):
        np.testing.assert_allclose(fused.numpy(), reference.numpy(), rtol=1e-4, atol=1e-4)


def test_instance_norm_statistics_in_float32_under_mixed_precision():
    """Values whose squares overflow float16 (> 65504) still normalise correctly."""
    x = (np.random.default_rng(2).normal(size=(2, 8, 8, 3)) * 400).astype("float32")
    layer = model_layers.InstanceNormalization(dtype="mixed_float16")
    y = layer(x)
    assert y.dtype == tf.float16 and layer.scale.dtype == "float32"
    scale, offset = (w.numpy() for w in (layer.scale, layer.offset))
    reference = _instance_norm_reference(x.astype("float16").astype("float32"), scale, offset)
    np.testing.assert_allclose(y.numpy().astype("float32"), reference, atol=1e-2)


def test_instance_norm_initialisation():
    layer = model_layers.InstanceNormalization()
    layer.build((None, None, None, 8192))
    scale = layer.scale.numpy()
    assert abs(scale.mean() - 1.0) < 0.002 and 0.018 < scale.std() < 0.022
    assert np.all(layer.offset.numpy() == 0)


def test_conv_initializer_truncated_normal_and_independent():
    a = model_layers.conv2d(256, 3)
    b = model_layers.conv2d(256, 3)
    a.build((None, None, None, 128))
    b.build((None, None, None, 128))
    ka, kb = a.kernel.numpy(), b.kernel.numpy()
    assert np.abs(ka).max() <= 0.04 + 1e-6          # truncated at 2 standard deviations
    assert 0.016 < ka.std() < 0.019                 # 0.02 * 0.88 after truncation
    assert not np.allclose(ka, kb)                  # fresh initializer per layer


def test_reflection_pad_values():
    x = np.arange(2 * 4 * 5 * 2, dtype="float32").reshape(2, 4, 5, 2)
    y = model_layers.ReflectionPad2D(2)(x)
    np.testing.assert_array_equal(y, np.pad(x, [(0, 0), (2, 2), (2, 2), (0, 0)], mode="reflect"))
    pad = model_layers.ReflectionPad2D(3)
    assert pad.compute_output_shape((None, None, 10, 1)) == (None, None, 16, 1)


def test_custom_layers_save_and_load(tmp_path):
    inputs = keras.Input((None, None, 2))
    x = model_layers.ReflectionPad2D(1)(inputs)
    outputs = model_layers.InstanceNormalization(epsilon=1e-3)(x)
    model = keras.Model(inputs, outputs)
    path = str(tmp_path / "tiny.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    x = _images(1, 8, 2)
    np.testing.assert_allclose(loaded(x), model(x), atol=1e-6)
    assert loaded.layers[-1].epsilon == 1e-3


def test_padding_layer_rejects_unknown_mode():
    with pytest.raises(ValueError):
        model_layers.padding_layer("circular", 1, "pad")


# --- feature extractor ------------------------------------------------------------------

def test_feature_extractor_shapes_frozen_and_equal_to_discriminator(bigan):
    disc = bigan["discriminator"]
    extractor = build_feature_extractor(disc)
    assert extractor.trainable_weights == [] and count_params(extractor) == EXTRACTOR_PARAMS
    for size in (64, 48):
        features = extractor(_images(2, size))
        assert [tuple(f.shape) for f in features] == [
            (2, size // 2, size // 2, 64), (2, size // 4, size // 4, 128),
            (2, size // 8, size // 8, 256), (2, size // 16, size // 16, 512)]
    x = _images(2, 64, seed=7)
    probe = keras.Model(disc.inputs[0], [disc.get_layer(n).output for n in FEATURE_LAYER_NAMES])
    for ours, theirs in zip(extractor(x), probe(x)):
        np.testing.assert_allclose(ours, theirs, atol=1e-5)
    weights = image_path_weights(disc)
    assert len(weights) == 8 and all(isinstance(w, np.ndarray) for w in weights)
    restored = feature_extractor_from_weights(weights)
    np.testing.assert_allclose(restored(x)[3], extractor(x)[3], atol=1e-6)


# --- FLOPs --------------------------------------------------------------------------------

def test_forward_flops_match_hand_counts(cyclegan, bigan, unit):
    patchgan_macs = (32 * 32 * 16 * 1 * 64 + 16 * 16 * 16 * 64 * 128 + 8 * 8 * 16 * 128 * 256
                     + 8 * 8 * 16 * 256 * 512 + 8 * 8 * 16 * 512 * 1)
    assert forward_flops(cyclegan["discriminator_a"], (64, 64, 1)) == 2 * patchgan_macs
    # Dense + transposed convs: transposed-conv work counted per input pixel.
    generator_macs = (200 * 4096 + 4 * 4 * 16 * 256 * 128 + 8 * 8 * 16 * 128 * 64
                      + 16 * 16 * 16 * 64 * 32 + 32 * 32 * 16 * 32 * 1)
    assert forward_flops(bigan["generator"], (200,)) == 2 * generator_macs
    # The ResNet generator's cost grows with the pixel count.
    assert forward_flops(cyclegan["generator_a2b"], (128, 128, 1)) == \
        4 * forward_flops(cyclegan["generator_a2b"], (64, 64, 1))
    # Nested models are counted through their parts.
    parts = [("encoder_a", (64, 64, 1)), ("shared_encoder", (16, 16, 256)),
             ("shared_generator", (16, 16, 256)), ("decoder_b", (16, 16, 256))]
    assert forward_flops(build_unit_translator(unit, "a"), (64, 64, 1)) == \
        sum(forward_flops(unit[name], shape) for name, shape in parts)
    assert forward_flops(bigan["discriminator"], [(64, 64, 1), (200,)]) > 0
    with pytest.raises(ValueError, match="built for inputs"):
        forward_flops(bigan["generator"], (100,))


# --- gradients ----------------------------------------------------------------------------

def _bias_feeding_instance_norm(variable_path):
    """UNIT residual-block conv biases are followed by IN, which removes them: zero gradient."""
    return "resblock_" in variable_path and "_conv" in variable_path and variable_path.endswith("bias")


def _assert_gradients_reach(models, loss_fn):
    variables = [v for m in models for v in m.trainable_variables]
    with tf.GradientTape() as tape:
        loss = loss_fn()
    grads = tape.gradient(loss, variables)
    checked = 0
    for v, g in zip(variables, grads):
        assert g is not None, f"no gradient path to {v.path}"
        if _bias_feeding_instance_norm(v.path):
            assert float(tf.reduce_max(tf.abs(g))) < 1e-4, v.path
        else:
            assert float(tf.reduce_max(tf.abs(g))) > 0, f"zero gradient for {v.path}"
            checked += 1
    assert checked > 0


def _weighted_sum(tensors, seed=0):
    rng = np.random.default_rng(seed)
    return sum(tf.reduce_sum(t * rng.normal(size=t.shape).astype("float32")) for t in tensors)


def test_gradients_reach_cyclegan(cyclegan):
    x = _images(1, 64, seed=11)
    g, d = cyclegan["generator_a2b"], cyclegan["discriminator_b"]
    _assert_gradients_reach([g, d], lambda: _weighted_sum([d(g(x, training=True), training=True)])
                            + _weighted_sum([g(x, training=True)]))


def test_gradients_reach_unit(unit):
    x = _images(1, 64, seed=12)
    a2b, b2a = build_unit_translator(unit, "a"), build_unit_translator(unit, "b")
    _assert_gradients_reach(
        list(unit.values()),
        lambda: _weighted_sum([a2b(x, training=True), b2a(x, training=True),
                               unit["discriminator_a"](x), unit["discriminator_b"](x)]))


def test_gradients_reach_bigan(bigan):
    x = tf.constant(_images(2, 64, seed=13))
    z = tf.random.normal((2, 200), seed=1)
    e, g, d = bigan["encoder"], bigan["generator"], bigan["discriminator"]
    _assert_gradients_reach(
        [e, g, d],
        lambda: _weighted_sum([d([x, e(x, training=True)]), d([g(z, training=True), z])]))


# --- summary CLI --------------------------------------------------------------------------

def _run_summary(*args):
    return subprocess.run([sys.executable, "-m", "cycle_medgan_tf.models.summary", *args],
                          cwd=REPO, capture_output=True, text=True, timeout=120)


def test_summary_cli_json():
    result = _run_summary("--model=cycle_medgan", "--size=64", "--channels=1")
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.strip().splitlines()
    summary = json.loads(line)
    assert summary["model"] == "cycle_medgan"
    assert summary["parts"] == {
        "generator_a2b": 11_370_880, "generator_b2a": 11_370_880,
        "discriminator_a": 2_763_520, "discriminator_b": 2_763_520,
        "feature_extractor (frozen)": EXTRACTOR_PARAMS}
    assert summary["total"] == sum(summary["parts"].values())


@pytest.mark.parametrize("args", [("--model=resnet",), ("--model=unit", "--size=66"),
                                  ("--model=unit", "--channels=0"), ("--model=unit", "--size=x")])
def test_summary_cli_bad_flags(args):
    result = _run_summary(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0] and "Traceback" not in result.stderr
