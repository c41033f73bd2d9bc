"""ResNet-9 generator of xhujoy/CycleGAN-tensorflow, layer for layer (its two up-sampling stages optionally as
resize-convolutions)."""

import keras
from keras import layers

from cycle_medgan_tf.catalogue import UPSAMPLE_CHOICES
from cycle_medgan_tf.models.layers import (
    InstanceNormalization,
    ReflectionPad2D,
    conv2d,
    cyclegan_residual_block,
    image_input,
)

BASE_FILTERS = 64
NUM_RESIDUAL_BLOCKS = 9


def _conv_in_relu(x, filters, kernel_size, strides, padding, name, transpose=False):
    x = conv2d(filters, kernel_size, strides, padding, name=f"{name}_conv", transpose=transpose)(x)
    x = InstanceNormalization(name=f"{name}_in")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _upsample_in_relu(x, filters, upsample, name):
    """One decoder stage at twice the resolution: transposed convolution, or x2 resize then convolution; IN, ReLU."""
    if upsample == "transpose":
        return _conv_in_relu(x, filters, 3, 2, "same", name, transpose=True)
    x = layers.UpSampling2D(2, interpolation=upsample, name=f"{name}_resize")(x)
    return _conv_in_relu(x, filters, 3, 1, "same", name)


def build_resnet_generator(image_size=None, channels=1, name="generator", upsample="transpose"):
    """The 9-block ResNet generator (11,370,880 parameters for 1 channel, whatever ``upsample``).

    Works for any input whose height and width are multiples of 4; with
    ``image_size=None`` one model accepts every such size. Output: tanh, float32.
    """
    if upsample not in UPSAMPLE_CHOICES:
        raise ValueError(f"upsample must be one of {', '.join(UPSAMPLE_CHOICES)}, got {upsample!r}")
    f = BASE_FILTERS
    inputs = image_input(image_size, channels)
    x = ReflectionPad2D(3, name="e1_pad")(inputs)
    x = _conv_in_relu(x, f, 7, 1, "valid", "e1")
    x = _conv_in_relu(x, 2 * f, 3, 2, "same", "e2")
    x = _conv_in_relu(x, 4 * f, 3, 2, "same", "e3")
    for i in range(NUM_RESIDUAL_BLOCKS):
        x = cyclegan_residual_block(x, 4 * f, name=f"r{i + 1}")
    x = _upsample_in_relu(x, 2 * f, upsample, "d1")
    x = _upsample_in_relu(x, f, upsample, "d2")
    x = ReflectionPad2D(3, name="out_pad")(x)
    x = conv2d(channels, 7, 1, "valid", name="out_conv")(x)
    outputs = layers.Activation("tanh", dtype="float32", name="out_tanh")(x)
    return keras.Model(inputs, outputs, name=name)
