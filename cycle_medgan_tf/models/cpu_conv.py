"""2-D convolutions whose gradients oneDNN computes slowly on a CPU, computed another way.

Two shapes are slow in the networks here (benchmarks/RESULTS.md, "Speed on the machine at hand"):

* **few output channels** (a generator's 7x7, 64 -> 1 image layer): oneDNN computes the forward pass quickly but
  both gradients slowly; in a CycleGAN step at 128x128 on a 2-core CPU this layer's backward pass took a quarter of
  the step. The forward convolution is kept and the gradients become two matrix products over the 7x7 patches of
  the (small, few-channel) output gradient (:func:`narrow_conv2d_valid`)::

      patches = 7x7 patches of dy padded by 6            (N, H', W', 49 * O)
      dx      = patches @ flip(kernel)                   (N, H', W', C)
      dkernel = x^T @ patches, flipped back              (7, 7, C, O)

* **few output pixels from large patches** (UNIT's last discriminator convolution, 1024 -> 2048 channels on a
  2x2 image): the convolution becomes one matrix product over the input's patches (:func:`patch_matmul_conv2d`),
  whose gradients TensorFlow derives as matrix products too.

Both are the convolution's own arithmetic in another order (float rounding differs; results are deterministic).
Weights and names are those of ``keras.layers.Conv2D``, so checkpoints and exported models are unchanged. With a
GPU, or inside :func:`plain_convolutions`, the layer is a plain ``Conv2D``.
"""

from __future__ import annotations

import contextlib

import keras
import tensorflow as tf
from keras import layers

MAX_OUTPUT_CHANNELS = 4      # "narrow": the patches of dy have kernel_h * kernel_w * filters channels
MAX_OUTPUT_PIXELS = 4        # "patch_matmul": at most this many output pixels per image ...
MIN_PATCH_SIZE = 4096        # ... from patches of at least this many inputs (kernel_h * kernel_w * channels)
_FAST_PATHS = [True]         # False inside plain_convolutions()


@contextlib.contextmanager
def plain_convolutions():
    """Layers built in this context are plain ``Conv2D`` (for A/B timing: ``bench.train --versus_plain_conv``)."""
    _FAST_PATHS.append(False)
    try:
        yield
    finally:
        _FAST_PATHS.pop()


def same_padding(kernel_size: int) -> tuple[int, int]:
    """TensorFlow's 'same' padding (before, after) of one axis for stride 1."""
    total = kernel_size - 1
    return total // 2, total - total // 2


def _patch_gradients(x, kernel, dy):
    """Gradients of ``conv2d(x, kernel, 'VALID')`` with respect to ``x`` and ``kernel``, from ``dy``."""
    kh, kw, channels, filters = kernel.shape
    dy_padded = tf.pad(dy, [[0, 0], [kh - 1, kh - 1], [kw - 1, kw - 1], [0, 0]])
    # patches[n, p, q, (a, b, o)] = dy_padded[n, p + a, q + b, o] = dy[n, p - (kh - 1 - a), q - (kw - 1 - b), o]
    patches = tf.image.extract_patches(dy_padded, sizes=[1, kh, kw, 1], strides=[1, 1, 1, 1], rates=[1, 1, 1, 1],
                                       padding="VALID")
    flipped = tf.reverse(kernel, axis=[0, 1])                            # flipped[a, b] = kernel[kh-1-a, kw-1-b]
    flat_patches = tf.reshape(patches, [-1, kh * kw * filters])
    weights = tf.reshape(tf.transpose(flipped, [0, 1, 3, 2]), [kh * kw * filters, channels])
    dx = tf.reshape(tf.matmul(flat_patches, weights), tf.shape(x))
    products = tf.matmul(tf.reshape(x, [-1, channels]), flat_patches, transpose_a=True)   # (C, (a, b, o))
    dkernel = tf.reverse(tf.transpose(tf.reshape(products, [channels, kh, kw, filters]), [1, 2, 0, 3]), axis=[0, 1])
    return dx, dkernel


@tf.custom_gradient
def narrow_conv2d_valid(x, kernel):
    """``tf.nn.conv2d(x, kernel, 1, 'VALID')`` (NHWC) with the patch-product gradients of this module."""
    y = tf.nn.conv2d(x, kernel, strides=1, padding="VALID")

    def grad(dy):
        return _patch_gradients(x, kernel, dy)

    return y, grad


def narrow_conv2d(x, kernel, padding: str):
    """Stride-1 convolution, ``padding`` 'valid' or 'same', through :func:`narrow_conv2d_valid`."""
    kernel = tf.cast(tf.convert_to_tensor(kernel), x.dtype)
    if padding == "same":
        (top, bottom), (left, right) = same_padding(kernel.shape[0]), same_padding(kernel.shape[1])
        x = tf.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]])
    return narrow_conv2d_valid(x, kernel)


def patch_matmul_conv2d(x, kernel, strides):
    """``tf.nn.conv2d(x, kernel, strides, 'VALID')`` (NHWC) as one matrix product over the input's patches."""
    kh, kw, channels, filters = kernel.shape
    kernel = tf.cast(tf.convert_to_tensor(kernel), x.dtype)
    patches = tf.image.extract_patches(x, sizes=[1, kh, kw, 1], strides=[1, *strides, 1], rates=[1, 1, 1, 1],
                                       padding="VALID")                 # (N, H', W', (a, b, c)): the kernel's order
    y = tf.matmul(tf.reshape(patches, [-1, kh * kw * channels]), tf.reshape(kernel, [kh * kw * channels, filters]))
    return tf.reshape(y, tf.concat([tf.shape(patches)[:3], [filters]], axis=0))


def valid_output_pixels(input_shape, kernel_size, strides):
    """Output pixels per image of a channels-last 'valid' convolution, or None when the input's size is not fixed."""
    if None in tuple(input_shape[1:3]):
        return None
    pixels = 1
    for side, k, s in zip(input_shape[1:3], kernel_size, strides):
        pixels *= (side - k) // s + 1
    return pixels


def choose_path(filters: int, kernel_size, strides, padding: str, dilation_rate, pixels, patch_size: int) -> str:
    """``"narrow"``, ``"patch_matmul"`` or ``"plain"`` for a channels-last convolution on this machine (``pixels``:
    output pixels per image or None; ``patch_size``: kernel_h * kernel_w * input channels)."""
    if not _FAST_PATHS[-1] or tuple(dilation_rate) != (1, 1) or tf.config.list_physical_devices("GPU"):
        return "plain"
    if filters <= MAX_OUTPUT_CHANNELS and tuple(strides) == (1, 1) and padding in ("valid", "same") \
            and max(kernel_size) > 1:
        return "narrow"
    if padding == "valid" and pixels is not None and pixels <= MAX_OUTPUT_PIXELS and patch_size >= MIN_PATCH_SIZE:
        return "patch_matmul"
    return "plain"


@keras.saving.register_keras_serializable(package="cycle_medgan_tf")
class CpuConv2D(layers.Conv2D):
    """``keras.layers.Conv2D`` that takes one of this module's paths where it applies (:func:`choose_path`,
    decided when the layer is built) and computes a plain convolution everywhere else."""

    path = "plain"

    def build(self, input_shape):
        super().build(input_shape)
        if self.data_format == "channels_last":
            pixels = (valid_output_pixels(input_shape, self.kernel_size, self.strides)
                      if self.padding == "valid" else None)     # patch_matmul takes 'valid' only
            patch_size = self.kernel_size[0] * self.kernel_size[1] * int(input_shape[-1])
            self.path = choose_path(self.filters, self.kernel_size, self.strides, self.padding, self.dilation_rate,
                                    pixels, patch_size)

    def convolution_op(self, inputs, kernel):
        if self.path == "narrow":
            return narrow_conv2d(inputs, kernel, self.padding)
        if self.path == "patch_matmul":
            return patch_matmul_conv2d(inputs, kernel, self.strides)
        return super().convolution_op(inputs, kernel)
