"""PatchGAN discriminator of xhujoy/CycleGAN-tensorflow (70x70 by default), with the depth of pix2pix's
``n_layers`` family (Isola et al. 2017, sec. 3.2.2 and 4.4) as an option: 1, 2 or 3 stride-2 stages give a
16x16, 34x34 or 70x70 receptive field; and, as an option, a second input channel showing the image in a narrow
intensity window (:class:`~cycle_medgan_tf.models.layers.WindowView`)."""

import keras
from keras import layers

from cycle_medgan_tf.catalogue import PATCHGAN_LAYER_CHOICES as LAYER_CHOICES
from cycle_medgan_tf.models.layers import InstanceNormalization, WindowView, conv2d, image_input

LEAKY_SLOPE = 0.2
BASE_FILTERS = 64
MAX_FILTERS = 512
DEFAULT_LAYERS = 3       # the faithful 70x70 PatchGAN


def stages(n_layers: int = DEFAULT_LAYERS) -> tuple[tuple[int, int, bool], ...]:
    """(filters, stride, instance norm) of the LeakyReLU stages: ``n_layers`` stride-2 convolutions (the first
    without normalisation), then one stride-1 convolution, filters doubling up to 512."""
    if n_layers not in LAYER_CHOICES:
        raise ValueError(f"n_layers must be one of {LAYER_CHOICES}, got {n_layers}")
    out = [(min(BASE_FILTERS * 2 ** i, MAX_FILTERS), 2, i > 0) for i in range(n_layers)]
    out.append((min(BASE_FILTERS * 2 ** n_layers, MAX_FILTERS), 1, True))
    return tuple(out)


def receptive_field(n_layers: int = DEFAULT_LAYERS, kernel: int = 4) -> int:
    """Side in pixels of the input patch one output logit sees (70 for the default)."""
    size = 1
    for _, stride, _ in reversed(stages(n_layers) + ((1, 1, False),)):     # the logits conv last
        size = (size - 1) * stride + kernel
    return size


def build_patchgan_discriminator(image_size=None, channels=1, name="discriminator", n_layers=DEFAULT_LAYERS,
                                 window_levels=None):
    """PatchGAN with 4x4 'same' convs, no biases, LSGAN logits (no sigmoid), float32 output.

    Default (``n_layers`` 3): 2,763,520 parameters for 1 channel, output (N, ceil(H/8), ceil(W/8), 1); in general
    the output is (N, ceil(H/2**n_layers), ceil(W/2**n_layers), 1). With ``window_levels`` (low, high) in the
    model's range, the first convolution also sees the image re-windowed to that band (:class:`WindowView`):
    64 x 16 more parameters per input channel, the input still ``channels`` wide.
    """
    inputs = image_input(image_size, channels)
    x = inputs if window_levels is None else WindowView(*window_levels, name="window_view")(inputs)
    for i, (filters, stride, use_norm) in enumerate(stages(n_layers)):
        x = conv2d(filters, 4, stride, "same", name=f"h{i}_conv")(x)
        if use_norm:
            x = InstanceNormalization(name=f"h{i}_in")(x)
        x = layers.LeakyReLU(negative_slope=LEAKY_SLOPE, name=f"h{i}_lrelu")(x)
    outputs = conv2d(1, 4, 1, "same", name=f"h{n_layers + 1}_logits", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=name)
