"""The generator's up-sampling option (``--upsample``; faithful: transposed convolutions): resize-convolutions have
the same parameters and no period-2 pattern by construction, the trainer builds what the setting asks and bad values
are refused (the faithful "transpose" is the default in every profile, and a config written before the setting
existed reads as it: tests/test_catalogue.py)."""

from __future__ import annotations

import keras
import pytest
import tensorflow as tf

from cycle_medgan_tf.config import resolve_config
from cycle_medgan_tf.models.registry import count_params
from cycle_medgan_tf.models.resnet_generator import _upsample_in_relu, build_resnet_generator
from cycle_medgan_tf.training.cycle import CycleTrainer
from tests.conftest import synthetic_info


def _layer_types(model) -> set[type]:
    return {type(layer) for layer in model.layers}


def test_both_decoders_have_the_faithful_parameter_count():
    transpose = build_resnet_generator(None)
    assert count_params(transpose) == 11_370_880 and keras.layers.Conv2DTranspose in _layer_types(transpose)
    for upsample in ("nearest", "bilinear"):
        resize = build_resnet_generator(None, upsample=upsample)
        assert count_params(resize) == 11_370_880
        assert keras.layers.Conv2DTranspose not in _layer_types(resize)
        assert keras.layers.UpSampling2D in _layer_types(resize)


@pytest.mark.parametrize("upsample, lattice", [("transpose", True), ("nearest", False),
                                                ("bilinear", False)])
def test_a_flat_input_comes_out_flat_only_through_resize_convolutions(upsample, lattice):
    """A constant feature map through one up-sampling stage (random weights): the transposed convolution's uneven
    overlap leaves a period-2 pattern inside the map, the resize-convolution a constant (borders aside)."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 4))
    stage = keras.Model(inputs, _upsample_in_relu(inputs, 4, upsample, "d"))
    out = stage(tf.ones((1, 8, 8, 4))).numpy()[0, 2:-2, 2:-2]        # 12x12 away from the zero padding
    spread = (out.max(axis=(0, 1)) - out.min(axis=(0, 1))).max()
    assert (spread > 0.1) if lattice else (spread < 1e-5)


def test_the_trainer_builds_the_decoder_the_setting_asks():
    trainer = CycleTrainer(resolve_config("cyclegan", "smoke", dict(image_size=32, upsample="bilinear")),
                           synthetic_info())
    for generator in (trainer.g_ab, trainer.g_ba):
        assert keras.layers.UpSampling2D in _layer_types(generator)
        assert generator(tf.zeros((1, 32, 32, 1))).shape == (1, 32, 32, 1)


def test_an_unknown_decoder_is_refused():
    with pytest.raises(ValueError, match="upsample must be one of transpose, nearest, bilinear"):
        resolve_config("cyclegan", "smoke", dict(upsample="bicubic"))
    with pytest.raises(ValueError, match="upsample must be one of"):
        build_resnet_generator(32, upsample="bicubic")
    assert "upsample" not in resolve_config("unit", "smoke").to_dict()
