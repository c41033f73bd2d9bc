"""The PatchGAN's depth option (``--disc_layers``; faithful 3 = 70x70): the receptive field each depth claims is
what a gradient measures, the default network is unchanged, the trainer builds what the setting asks, bad values
are refused (a config written before the setting existed reads as the faithful 3: tests/test_catalogue.py)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from cycle_medgan_tf.config import resolve_config
from cycle_medgan_tf.models.layers import InstanceNormalization
from cycle_medgan_tf.models.patchgan import build_patchgan_discriminator, receptive_field, stages
from cycle_medgan_tf.models.registry import count_params
from cycle_medgan_tf.training.cycle import CycleTrainer
from tests.conftest import synthetic_info

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
