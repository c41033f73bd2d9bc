"""The PatchGAN's view: its depth (``--disc_layers``; faithful 3 = 70x70): the receptive field each depth claims is
what a gradient measures, the default network is unchanged, the trainer builds what the setting asks, bad values
are refused (a config written before the setting existed reads as the faithful 3: tests/test_catalogue.py); and
its window (``--disc_window_a/b``; faithful: none): the band's second channel, its parameters, its levels in a
transfer window, a gradient through it, bad bands refused."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from cycle_medgan_tf import losses
from cycle_medgan_tf.config import resolve_config
from cycle_medgan_tf.data.window import as_window, to_model
from cycle_medgan_tf.models.layers import InstanceNormalization, WindowView
from cycle_medgan_tf.models.patchgan import build_patchgan_discriminator, receptive_field, stages
from cycle_medgan_tf.models.registry import count_params
from cycle_medgan_tf.training.cycle import CycleTrainer
from tests.conftest import run_module, synthetic_info

INFO = synthetic_info()


def _without_norms(model):
    """The same convolutions with each instance norm replaced by the identity: instance statistics mix every
    pixel into every logit, so only the convolution stack has a receptive field to measure."""
    def clone(layer):
        if isinstance(layer, InstanceNormalization):
            return keras.layers.Identity(name=layer.name)
        return layer.__class__.from_config(layer.get_config())
    return keras.models.clone_model(model, clone_function=clone)


def _measured_receptive_field(model, size: int) -> int:
    """Side of the input region whose pixels move one central logit (non-zero input gradient)."""
    model = _without_norms(model)
    x = tf.random.stateless_uniform((1, size, size, 1), [3, 4], -1.0, 1.0)
    with tf.GradientTape() as tape:
        tape.watch(x)
        logits = model(x, training=False)
        centre = logits[0, logits.shape[1] // 2, logits.shape[2] // 2, 0]
    grad = np.abs(tape.gradient(centre, x).numpy()[0, :, :, 0])
    rows, cols = np.nonzero(grad > 0)
    assert rows.min() > 0 and cols.min() > 0 and rows.max() < size - 1, "the field reached the border"
    return int(max(rows.max() - rows.min(), cols.max() - cols.min()) + 1)


@pytest.mark.parametrize("n_layers, size", [(1, 64), (2, 96), (3, 160)])
def test_each_depth_sees_the_receptive_field_it_claims(n_layers, size):
    model = build_patchgan_discriminator(size, n_layers=n_layers)
    assert _measured_receptive_field(model, size) == receptive_field(n_layers)
    assert model.output_shape == (None, size // 2 ** n_layers, size // 2 ** n_layers, 1)


def test_default_depth_is_the_faithful_70x70_patchgan():
    assert receptive_field() == 70 and [receptive_field(n) for n in (1, 2)] == [16, 34]
    assert count_params(build_patchgan_discriminator(None)) == 2_763_520
    # two stages fewer: 4x4 convs 1->64->128->256 and the 256->1 logits, instance norms of 128 and 256 channels
    want = 16 * (1 * 64 + 64 * 128 + 128 * 256 + 256 * 1) + 2 * (128 + 256)
    assert stages(2) == ((64, 2, False), (128, 2, True), (256, 1, True))
    assert count_params(build_patchgan_discriminator(None, n_layers=2)) == want


def test_trainer_builds_the_depth_the_setting_asks():
    trainer = CycleTrainer(resolve_config("cyclegan", "smoke", dict(image_size=32, disc_layers=1)), INFO)
    x = tf.zeros((1, 32, 32, 1))
    assert trainer.d_a(x).shape == (1, 16, 16, 1) and trainer.d_b(x).shape == (1, 16, 16, 1)


@pytest.mark.parametrize("value", [0, 6])
def test_a_depth_it_cannot_build_is_refused(value):
    with pytest.raises(ValueError, match="disc_layers must be one of 1, 2, 3, 4, 5"):
        resolve_config("cyclegan", "smoke", dict(disc_layers=value))
    with pytest.raises(ValueError, match="n_layers must be one of"):
        stages(value)


CT_TRANSFER = as_window((-1000.0, 2000.0), [[-200.0, 300.0], [-0.6, 0.6]])     # the soft-tissue transfer store's


def test_the_window_view_shows_the_band_at_a_readers_scale():
    low, high = to_model(np.array([0.0, 80.0]), CT_TRANSFER)
    hu = np.array([-1000.0, 0.0, 26.0, 40.0, 80.0, 1000.0], dtype=np.float32)     # air, band ends, WM, GM, bone
    x = to_model(hu, CT_TRANSFER).reshape(1, 1, -1, 1)
    out = WindowView(low, high)(x).numpy()[0, 0, :, :]
    np.testing.assert_allclose(out[:, 0], x[0, 0, :, 0])                           # the image itself, unchanged
    np.testing.assert_allclose(out[[1, 4], 1], [-np.tanh(1.0), np.tanh(1.0)], atol=1e-5)
    assert out[0, 1] < -0.99 and out[5, 1] > 0.99                                  # air and bone saturate
    # a 14 HU grey/white-matter difference is 0.034 of the image channel, ten times that in the window's
    assert x[0, 0, 3, 0] - x[0, 0, 2, 0] < 0.04 and out[3, 1] - out[2, 1] > 0.3
    with pytest.raises(ValueError, match="low < high"):
        WindowView(0.1, 0.1)


def test_a_window_adds_one_input_channel_and_nothing_else():
    plain = build_patchgan_discriminator(64)
    viewed = build_patchgan_discriminator(64, window_levels=(-0.12, 0.072))
    assert count_params(plain) == 2_763_520 and count_params(viewed) == 2_763_520 + 16 * 64
    assert viewed.input_shape == plain.input_shape == (None, 64, 64, 1)
    assert viewed.output_shape == plain.output_shape


def test_trainer_gives_the_window_to_the_discriminator_the_setting_names_and_the_generator_its_gradient():
    info = dataclasses.replace(synthetic_info(), window_b=CT_TRANSFER)
    cfg = resolve_config("cyclegan", "smoke", dict(image_size=32, disc_window_b="0:80", precision="float32"))
    trainer = CycleTrainer(cfg, info)
    views = [layer for layer in trainer.d_b.layers if isinstance(layer, WindowView)]
    assert not any(isinstance(layer, WindowView) for layer in trainer.d_a.layers) and len(views) == 1
    np.testing.assert_allclose([views[0].low, views[0].high], to_model(np.array([0.0, 80.0]), CT_TRANSFER))
    a = tf.random.stateless_uniform((1, 32, 32, 1), [1, 2], -1.0, 1.0)
    with tf.GradientTape() as tape:
        loss = losses.lsgan_generator_loss(trainer.d_b(trainer.g_ab(a, training=True), training=True))
    grads = tape.gradient(loss, trainer.g_ab.trainable_variables)
    assert all(g is not None for g in grads) and float(tf.linalg.global_norm(grads)) > 0


@pytest.mark.parametrize("value", ["80:0", "0", "a:b", "0:80:1"])
def test_a_band_that_is_not_lo_hi_is_refused(value):
    with pytest.raises(ValueError, match="disc_window_b .*expected LO:HI"):
        resolve_config("cyclegan", "smoke", dict(disc_window_b=value))
    assert "disc_window_b" not in resolve_config("unit", "smoke").to_dict()


def test_a_band_outside_the_stores_window_is_refused_with_one_line(phantom_store, tmp_path):
    # the phantom's CT window is [-1000, 2000] HU: 0:3000 is not in it (e.g. a band given in other units)
    out = run_module("cycle_medgan_tf.train", "--model=cyclegan", "--profile=smoke", f"--data={phantom_store}",
                     f"--workdir={tmp_path}/r", "--disc_window_b=0:3000")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "--disc_window_b 0:3000 is not inside the domain's window [-1000, 2000]" in out.stderr
