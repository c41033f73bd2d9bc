"""70x70 PatchGAN discriminator of xhujoy/CycleGAN-tensorflow."""

import keras
from keras import layers

from cycle_medgan_tf.models.layers import InstanceNormalization, conv2d, image_input

LEAKY_SLOPE = 0.2
# (filters, stride, instance norm) of the four LeakyReLU stages.
_STAGES = ((64, 2, False), (128, 2, True), (256, 2, True), (512, 1, True))


def build_patchgan_discriminator(image_size=None, channels=1, name="discriminator"):
    """PatchGAN with 4x4 'same' convs, no biases, LSGAN logits (no sigmoid), float32 output.

    2,763,520 parameters for 1 channel. Output: (N, ceil(H/8), ceil(W/8), 1).
    """
    inputs = image_input(image_size, channels)
    x = inputs
    for i, (filters, stride, use_norm) in enumerate(_STAGES):
        x = conv2d(filters, 4, stride, "same", name=f"h{i}_conv")(x)
        if use_norm:
            x = InstanceNormalization(name=f"h{i}_in")(x)
        x = layers.LeakyReLU(negative_slope=LEAKY_SLOPE, name=f"h{i}_lrelu")(x)
    outputs = conv2d(1, 4, 1, "same", name="h4_logits", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=name)
