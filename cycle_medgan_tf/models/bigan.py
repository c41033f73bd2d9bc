"""BiGAN (Donahue et al., ICLR 2017) for 1-channel images, and its frozen feature extractor (Cycle-MedGAN's
pre-trained feature extractor).

The joint discriminator D([x, z]) has three parts:

* an image path that sees x alone: four 4x4 stride-2 'same' convs (64, 128, 256, 512 filters,
  bias, LeakyReLU 0.2, no normalisation). Its activations phi_1..phi_4 are the Cycle-MedGAN
  perceptual/style features, well defined for a single image;
* a z path: one dense layer (512, LeakyReLU 0.2);
* joint layers after concatenating the flattened image features (reduced by a 1x1 conv) with
  the z features: dense 512 + LeakyReLU 0.2, dense 1 (logit, float32).

Encoder E: x -> z (DCGAN-style strided convs with batch norm, linear output) and generator
G: z -> x (dense, then stride-2 transposed convs with batch norm, tanh output) mirror each other.
"""

import math

import keras
import numpy as np
from keras import layers

from cycle_medgan_tf.models.layers import conv2d, conv_initializer, image_input

LEAKY_SLOPE = 0.2
DEFAULT_Z_DIM = 200
FEATURE_FILTERS = (64, 128, 256, 512)
FEATURE_LAYER_NAMES = ("phi_1", "phi_2", "phi_3", "phi_4")
FEATURE_CONV_NAMES = ("x_conv_1", "x_conv_2", "x_conv_3", "x_conv_4")
HEAD_FILTERS = 32
Z_PATH_UNITS = 512
JOINT_UNITS = 512
EG_BASE_FILTERS = 32
EG_MAX_FILTERS = 256
EG_BOTTOM_SIDE = 4
MIN_IMAGE_SIZE = 32


def check_bigan_image_size(image_size):
    """Raise ValueError unless ``image_size`` is a power of 2 that is at least 32."""
    if (not isinstance(image_size, (int, np.integer)) or image_size < MIN_IMAGE_SIZE
            or image_size & (image_size - 1)):
        raise ValueError(
            f"BiGAN image_size must be a power of 2 >= {MIN_IMAGE_SIZE}, got {image_size!r}")


def _eg_filters(image_size):
    """Filters of E's stride-2 convs from S/2 down to 4x4 (G uses them in reverse)."""
    steps = int(math.log2(image_size // EG_BOTTOM_SIDE))
    return [min(EG_BASE_FILTERS * 2 ** i, EG_MAX_FILTERS) for i in range(steps)]


def _dense(units, name, use_bias=True, dtype=None):
    return layers.Dense(units, use_bias=use_bias, kernel_initializer=conv_initializer(),
                        name=name, dtype=dtype)


def _batch_norm(name):
    return layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name)


def _lrelu(x, name):
    return layers.LeakyReLU(negative_slope=LEAKY_SLOPE, name=name)(x)


def _image_path(x, dtype=None):
    """Apply the discriminator's image path; returns [phi_1, ..., phi_4]."""
    features = []
    for filters, conv_name, phi_name in zip(FEATURE_FILTERS, FEATURE_CONV_NAMES,
                                            FEATURE_LAYER_NAMES):
        x = conv2d(filters, 4, 2, "same", use_bias=True, name=conv_name, dtype=dtype)(x)
        x = layers.LeakyReLU(negative_slope=LEAKY_SLOPE, name=phi_name, dtype=dtype)(x)
        features.append(x)
    return features


def build_bigan_encoder(image_size, z_dim=DEFAULT_Z_DIM, name="encoder"):
    """E: (N, S, S, 1) -> (N, z_dim), float32 output."""
    check_bigan_image_size(image_size)
    inputs = image_input(image_size, 1)
    x = inputs
    for i, filters in enumerate(_eg_filters(image_size)):
        first = i == 0
        x = conv2d(filters, 4, 2, "same", use_bias=first, name=f"conv_{i}")(x)
        if not first:
            x = _batch_norm(f"bn_{i}")(x)
        x = _lrelu(x, f"lrelu_{i}")
    x = layers.Flatten(name="flatten")(x)
    outputs = _dense(z_dim, "z", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=name)


def build_bigan_generator(image_size, z_dim=DEFAULT_Z_DIM, name="generator"):
    """G: (N, z_dim) -> (N, S, S, 1) in (-1, 1), float32 output."""
    check_bigan_image_size(image_size)
    filters = _eg_filters(image_size)[::-1]
    inputs = keras.Input(shape=(z_dim,), name="z")
    x = _dense(EG_BOTTOM_SIDE * EG_BOTTOM_SIDE * filters[0], "project", use_bias=False)(inputs)
    x = _batch_norm("bn_project")(x)
    x = layers.ReLU(name="relu_project")(x)
    x = layers.Reshape((EG_BOTTOM_SIDE, EG_BOTTOM_SIDE, filters[0]), name="reshape")(x)
    for i, f in enumerate(filters[1:]):
        x = conv2d(f, 4, 2, "same", name=f"deconv_{i}", transpose=True)(x)
        x = _batch_norm(f"bn_{i}")(x)
        x = layers.ReLU(name=f"relu_{i}")(x)
    x = conv2d(1, 4, 2, "same", use_bias=True, name="deconv_out", transpose=True)(x)
    outputs = layers.Activation("tanh", dtype="float32", name="tanh")(x)
    return keras.Model(inputs, outputs, name=name)


def build_bigan_discriminator(image_size, z_dim=DEFAULT_Z_DIM, name="discriminator"):
    """Joint D([x, z]) -> (N, 1) float32 logit; its image path gives phi_1..phi_4."""
    check_bigan_image_size(image_size)
    image = image_input(image_size, 1)
    z = keras.Input(shape=(z_dim,), name="z")
    x = _image_path(image)[-1]
    x = conv2d(HEAD_FILTERS, 1, 1, "same", use_bias=True, name="x_head")(x)
    x = layers.Flatten(name="x_flatten")(_lrelu(x, "x_head_lrelu"))
    h = _lrelu(_dense(Z_PATH_UNITS, "z_dense")(z), "z_lrelu")
    joint = layers.Concatenate(name="joint_concat")([x, h])
    joint = _lrelu(_dense(JOINT_UNITS, "joint_dense")(joint), "joint_lrelu")
    logit = _dense(1, "logit", dtype="float32")(joint)
    return keras.Model([image, z], logit, name=name)


def build_bigan(image_size, z_dim=DEFAULT_Z_DIM):
    """The three BiGAN networks: dict(encoder=E, generator=G, discriminator=D)."""
    return {
        "encoder": build_bigan_encoder(image_size, z_dim),
        "generator": build_bigan_generator(image_size, z_dim),
        "discriminator": build_bigan_discriminator(image_size, z_dim),
    }


def build_bigan_networks(image_size, channels=1):
    """:func:`build_bigan` as the model catalogue builds a family's networks (1 channel, an int image size)."""
    if channels != 1:
        raise ValueError(f"the BiGAN feature extractor is 1-channel, got channels={channels}")
    if image_size is None:
        raise ValueError("the BiGAN needs an int image_size (a power of 2 >= 32)")
    return build_bigan(image_size)


def image_path_weights(discriminator):
    """[kernel_1, bias_1, ..., kernel_4, bias_4] of the discriminator's image path (NumPy arrays)."""
    return [np.asarray(w) for name in FEATURE_CONV_NAMES
            for w in discriminator.get_layer(name).get_weights()]


def feature_extractor_from_weights(weights=None, image_size=None, dtype="float32"):
    """Frozen model x -> [phi_1, ..., phi_4] with the given image-path weights.

    ``weights`` is the list returned by :func:`image_path_weights` (None keeps the fresh
    random initialisation). Spatial dims are None unless ``image_size`` is given. The model
    computes in float32 by default so Gram matrices stay accurate under mixed precision.
    """
    inputs = image_input(image_size, 1)
    features = _image_path(inputs, dtype=dtype)
    extractor = keras.Model(inputs, features, name="feature_extractor")
    if weights is not None:
        extractor.set_weights(list(weights))
    extractor.trainable = False
    return extractor


def build_feature_extractor(discriminator=None, image_size=None):
    """Frozen phi_1..phi_4 extractor with weights copied from a BiGAN discriminator's image path.

    Input (N, S, S, 1) in [-1, 1] (S any multiple of 16 when ``image_size`` is None); output a
    list of 4 tensors of sides S/2, S/4, S/8, S/16 and 64, 128, 256, 512 channels.
    """
    weights = None if discriminator is None else image_path_weights(discriminator)
    return feature_extractor_from_weights(weights, image_size)
