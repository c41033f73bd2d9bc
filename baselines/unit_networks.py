"""UNIT networks mirroring taki0112/UNIT-Tensorflow, ch = 64.

Every convolution uses explicit zero padding followed by a 'valid' conv and has a bias;
transposed convolutions use TF 'SAME' padding, as in taki0112's ``deconv``. The latent
noise ``z = mu + N(0, I)`` belongs to the training code: ``shared_encoder`` returns mu.
"""

import keras
from keras import layers

from cycle_medgan_tf.models.layers import conv2d, image_input, unit_residual_block

BASE_FILTERS = 64
LEAKY_SLOPE = 0.01
LATENT_FILTERS = 4 * BASE_FILTERS
ENCODER_BLOCKS = 3
SHARED_BLOCKS = 1
DECODER_BLOCKS = 3
DISCRIMINATOR_FILTERS = (64, 128, 256, 512, 1024, 2048)
DOMAINS = ("a", "b")


def _padded_conv(x, filters, kernel_size, strides, pad, name, dtype=None):
    """Zero pad then 'valid' conv with bias (taki0112's ``conv``)."""
    if pad:
        x = layers.ZeroPadding2D(pad, name=f"{name}_pad")(x)
    return conv2d(filters, kernel_size, strides, "valid", use_bias=True, name=name, dtype=dtype)(x)


def _lrelu(x, name):
    return layers.LeakyReLU(negative_slope=LEAKY_SLOPE, name=name)(x)


def _stride2_side(side):
    """Output side of a pad-1, 3x3, stride-2 'valid' conv: floor((h - 1) / 2) + 1."""
    return (side - 1) // 2 + 1


def _latent_input(image_size):
    side = None if image_size is None else _stride2_side(_stride2_side(int(image_size)))
    return keras.Input(shape=(side, side, LATENT_FILTERS), name="latent")


def _residual_stack(x, num_blocks, prefix):
    for i in range(num_blocks):
        x = unit_residual_block(x, LATENT_FILTERS, name=f"{prefix}{i}")
    return x


def build_unit_encoder(image_size=None, channels=1, name="encoder"):
    """Per-domain encoder: 7x7 conv, two stride-2 3x3 convs (LeakyReLU 0.01), 3 residual blocks."""
    inputs = image_input(image_size, channels)
    x = _lrelu(_padded_conv(inputs, BASE_FILTERS, 7, 1, 3, "conv_0"), "lrelu_0")
    for i, filters in enumerate((2 * BASE_FILTERS, 4 * BASE_FILTERS), start=1):
        x = _lrelu(_padded_conv(x, filters, 3, 2, 1, f"conv_{i}"), f"lrelu_{i}")
    x = _residual_stack(x, ENCODER_BLOCKS, "resblock_")
    return keras.Model(inputs, x, name=name)


def build_unit_shared_block(image_size=None, name="shared"):
    """One shared residual block on the 256-channel latent (shared encoder or shared generator)."""
    inputs = _latent_input(image_size)
    outputs = _residual_stack(inputs, SHARED_BLOCKS, "resblock_")
    return keras.Model(inputs, outputs, name=name)


def build_unit_decoder(image_size=None, channels=1, name="decoder"):
    """Per-domain decoder: 3 residual blocks, two stride-2 3x3 transposed convs, 1x1 to C + tanh."""
    inputs = _latent_input(image_size)
    x = _residual_stack(inputs, DECODER_BLOCKS, "resblock_")
    for i, filters in enumerate((2 * BASE_FILTERS, BASE_FILTERS)):
        x = conv2d(filters, 3, 2, "same", use_bias=True, name=f"deconv_{i}", transpose=True)(x)
        x = _lrelu(x, f"lrelu_{i}")
    x = conv2d(channels, 1, 1, "same", use_bias=True, name="deconv_tanh", transpose=True)(x)
    outputs = layers.Activation("tanh", dtype="float32", name="tanh")(x)
    return keras.Model(inputs, outputs, name=name)


def build_unit_discriminator(image_size=None, channels=1, name="discriminator"):
    """Six stride-2 3x3 convs (64..2048, LeakyReLU 0.01, no norm) and a 1x1 conv to float32 logits.

    Each stride-2 conv maps a side h to floor((h - 1) / 2) + 1, so 64 -> 1, 128 -> 2, 256 -> 4.
    """
    inputs = image_input(image_size, channels)
    x = inputs
    for i, filters in enumerate(DISCRIMINATOR_FILTERS):
        x = _lrelu(_padded_conv(x, filters, 3, 2, 1, f"conv_{i}"), f"lrelu_{i}")
    outputs = _padded_conv(x, 1, 1, 1, 0, "dis_logit", dtype="float32")
    return keras.Model(inputs, outputs, name=name)


def build_unit_networks(image_size=None, channels=1):
    """All eight UNIT parts as separate Keras models (keys: encoder_a, ..., discriminator_b)."""
    nets = {}
    for d in DOMAINS:
        nets[f"encoder_{d}"] = build_unit_encoder(image_size, channels, name=f"encoder_{d}")
    nets["shared_encoder"] = build_unit_shared_block(image_size, name="shared_encoder")
    nets["shared_generator"] = build_unit_shared_block(image_size, name="shared_generator")
    for d in DOMAINS:
        nets[f"decoder_{d}"] = build_unit_decoder(image_size, channels, name=f"decoder_{d}")
    for d in DOMAINS:
        nets[f"discriminator_{d}"] = build_unit_discriminator(
            image_size, channels, name=f"discriminator_{d}")
    return nets


def build_unit_translator(nets, source="a"):
    """Deterministic translator ``decoder_other(shared_generator(shared_encoder(encoder_source(x))))``.

    Uses the latent mean (no sampling noise); returns one Keras model sharing ``nets``' weights.
    """
    if source not in DOMAINS:
        raise ValueError(f"source must be 'a' or 'b', got {source!r}")
    target = "b" if source == "a" else "a"
    encoder = nets[f"encoder_{source}"]
    inputs = keras.Input(shape=encoder.input_shape[1:], name="image")
    x = encoder(inputs)
    x = nets["shared_encoder"](x)
    x = nets["shared_generator"](x)
    outputs = nets[f"decoder_{target}"](x)
    return keras.Model(inputs, outputs, name=f"unit_{source}2{target}")
