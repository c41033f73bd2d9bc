"""Shared building blocks for the CycleGAN, Cycle-MedGAN and UNIT networks.

Everything here is channels-last. Two residual-block flavours are built from the same
primitives (:func:`padding_layer`, :func:`conv2d`, :class:`InstanceNormalization`):

* ``cyclegan`` style (xhujoy/CycleGAN-tensorflow): reflection padding, no conv bias;
* ``unit`` style (taki0112/UNIT-Tensorflow): zero padding, conv bias.
"""

import keras
import tensorflow as tf
from keras import layers, ops

from cycle_medgan_tf.models.cpu_conv import CpuConv2D

INIT_STDDEV = 0.02
IN_EPSILON = 1e-5


def conv_initializer():
    """A fresh truncated-normal(0, 0.02) kernel initializer.

    A new instance per layer: an unseeded Keras 3 initializer reused across layers
    would give every layer identical weights.
    """
    return keras.initializers.TruncatedNormal(mean=0.0, stddev=INIT_STDDEV)


def image_input(image_size, channels, name="image"):
    """A ``keras.Input`` of shape (S, S, C), or (None, None, C) when ``image_size`` is None."""
    side = None if image_size is None else int(image_size)
    return keras.Input(shape=(side, side, channels), name=name)


def instance_norm(x, scale, offset, epsilon=IN_EPSILON):
    """Instance normalisation of NHWC ``x`` with per-channel float32 ``scale`` and ``offset``.

    One fused kernel (``FusedBatchNormV3`` in training mode, oneDNN on x86) on a view where each sample's channels
    are separate channels: over a batch of one that view is ``x`` itself, otherwise the samples are moved next to
    the channels. The kernel takes float32, bfloat16 or float16 input and always accumulates its statistics in
    float32; it is 2-4x faster forward + backward than moments and arithmetic on this CPU (benchmarks/RESULTS.md).
    """
    x = tf.convert_to_tensor(x)
    scale, offset = tf.cast(scale, tf.float32), tf.cast(offset, tf.float32)
    if x.dtype not in (tf.float32, tf.bfloat16, tf.float16):
        x = tf.cast(x, tf.float32)
    single = x.shape[0] == 1
    if not single:
        shape = tf.shape(x)
        n, h, w, c = shape[0], shape[1], shape[2], shape[3]
        x = tf.reshape(tf.transpose(x, [1, 2, 0, 3]), [1, h, w, n * c])
        scale, offset = tf.tile(scale, [n]), tf.tile(offset, [n])
    empty = tf.zeros([0], tf.float32)
    y = tf.raw_ops.FusedBatchNormV3(x=x, scale=scale, offset=offset, mean=empty, variance=empty,
                                    epsilon=float(epsilon), data_format="NHWC", is_training=True)[0]
    if not single:
        y = tf.transpose(tf.reshape(y, [h, w, n, c]), [2, 0, 1, 3])
    return y


@keras.saving.register_keras_serializable(package="cycle_medgan_tf")
class InstanceNormalization(layers.Layer):
    """Affine instance normalisation over H and W, per sample and channel.

    ``y = scale * (x - mean) / sqrt(var + epsilon) + offset``, with the (biased) moments
    taken over the spatial axes. Scale starts as N(1, 0.02), offset as 0. Statistics are
    computed in float32 whatever the dtype policy; the result is cast back to the
    layer's compute dtype.
    """

    def __init__(self, epsilon=IN_EPSILON, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError("InstanceNormalization needs a known channel dimension.")
        self.scale = self.add_weight(
            name="scale",
            shape=(channels,),
            initializer=keras.initializers.RandomNormal(mean=1.0, stddev=INIT_STDDEV),
            autocast=False,
        )
        self.offset = self.add_weight(
            name="offset", shape=(channels,), initializer="zeros", autocast=False
        )

    def call(self, inputs):
        return ops.cast(instance_norm(inputs, self.scale, self.offset, self.epsilon), self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"epsilon": self.epsilon})
        return config


@keras.saving.register_keras_serializable(package="cycle_medgan_tf")
class ReflectionPad2D(layers.Layer):
    """Reflection padding of H and W (like ``tf.pad(mode="REFLECT")``); works with unknown H, W."""

    def __init__(self, padding=1, **kwargs):
        super().__init__(**kwargs)
        self.padding = int(padding)
        if self.padding < 0:
            raise ValueError(f"padding must be >= 0, got {padding}")

    def call(self, inputs):
        p = self.padding
        return ops.pad(inputs, [[0, 0], [p, p], [p, p], [0, 0]], mode="reflect")

    def compute_output_shape(self, input_shape):
        grow = lambda d: None if d is None else d + 2 * self.padding  # noqa: E731
        return (input_shape[0], grow(input_shape[1]), grow(input_shape[2]), input_shape[3])

    def get_config(self):
        config = super().get_config()
        config.update({"padding": self.padding})
        return config


@keras.saving.register_keras_serializable(package="cycle_medgan_tf")
class WindowView(layers.Layer):
    """The image plus a second channel: the image re-windowed to the model-range band ``(low, high)``, softly,
    ``tanh((x - centre) / half_width)`` (the band maps to -0.76..0.76, values outside it saturate but keep a
    gradient). A discriminator given this view sees contrast inside the band (e.g. the brain window of a CT
    stored in a wide window) at the scale a reader sees it. Computed in float32 whatever the dtype policy."""

    def __init__(self, low, high, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.low, self.high = float(low), float(high)
        if not self.high > self.low:
            raise ValueError(f"a window view needs low < high, got ({low}, {high})")

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        centre, half = (self.low + self.high) / 2.0, (self.high - self.low) / 2.0
        return ops.concatenate([x, ops.tanh((x - centre) / half)], axis=-1)

    def compute_output_shape(self, input_shape):
        channels = None if input_shape[-1] is None else 2 * input_shape[-1]
        return (*input_shape[:-1], channels)

    def get_config(self):
        config = super().get_config()
        config.update({"low": self.low, "high": self.high})
        return config


def padding_layer(mode, pad, name):
    """Spatial padding by ``pad`` pixels on each side: ``mode`` is "reflect" or "zero"."""
    if mode == "reflect":
        return ReflectionPad2D(pad, name=name)
    if mode == "zero":
        return layers.ZeroPadding2D(pad, name=name)
    raise ValueError(f"unknown padding mode {mode!r} (expected 'reflect' or 'zero')")


def conv2d(filters, kernel_size, strides=1, padding="valid", use_bias=False, name=None,
           transpose=False, dtype=None):
    """A (transposed) 2-D convolution initialised with truncated normal(0.02), zero bias. A forward convolution is a
    :class:`cpu_conv.CpuConv2D`: a ``Conv2D`` that computes the shapes oneDNN is slow at another way on CPUs."""
    conv_class = layers.Conv2DTranspose if transpose else CpuConv2D
    return conv_class(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        use_bias=use_bias,
        kernel_initializer=conv_initializer(),
        bias_initializer="zeros",
        name=name,
        dtype=dtype,
    )


def residual_block(x, filters, pad_mode, use_bias, name):
    """Residual block ``x + IN(conv(pad(ReLU(IN(conv(pad(x)))))))`` with 3x3 'valid' convs.

    No activation after the addition. ``pad_mode="reflect", use_bias=False`` is the
    CycleGAN block; ``pad_mode="zero", use_bias=True`` is the UNIT block.
    """
    y = x
    for i in (1, 2):
        y = padding_layer(pad_mode, 1, name=f"{name}_pad{i}")(y)
        y = conv2d(filters, 3, use_bias=use_bias, name=f"{name}_conv{i}")(y)
        y = InstanceNormalization(name=f"{name}_in{i}")(y)
        if i == 1:
            y = layers.ReLU(name=f"{name}_relu")(y)
    return layers.Add(name=f"{name}_add")([x, y])


def cyclegan_residual_block(x, filters, name):
    """xhujoy CycleGAN residual block: reflection padding, no bias."""
    return residual_block(x, filters, pad_mode="reflect", use_bias=False, name=name)


def unit_residual_block(x, filters, name):
    """taki0112 UNIT residual block: zero padding, conv bias."""
    return residual_block(x, filters, pad_mode="zero", use_bias=True, name=name)
