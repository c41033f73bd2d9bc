"""Loss functions for the CycleGAN family (LSGAN, cycle L1, Cycle-MedGAN's cycle-perceptual and cycle-style
losses, the optional MIND structure-consistency loss) and UNIT (non-saturating GAN, L1, KL). All return float32
scalars averaged over the batch."""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf


def _f32(x):
    return tf.cast(x, tf.float32)


def lsgan_generator_loss(fake_logits) -> tf.Tensor:
    """Least-squares GAN loss for the generator: mean((D(G(x)) - 1)^2)."""
    return tf.reduce_mean(tf.square(_f32(fake_logits) - 1.0))


def lsgan_discriminator_loss(real_logits, fake_logits) -> tf.Tensor:
    """(mean((D(y) - 1)^2) + mean(D(G(x))^2)) / 2, as xhujoy."""
    return 0.5 * (tf.reduce_mean(tf.square(_f32(real_logits) - 1.0)) + tf.reduce_mean(tf.square(_f32(fake_logits))))


def l1(a, b) -> tf.Tensor:
    """Mean absolute error."""
    return tf.reduce_mean(tf.abs(_f32(a) - _f32(b)))


def gram_matrix(features) -> tf.Tensor:
    """Gram matrices phi^T phi / (h w d) of (N, h, w, d) features: (N, d, d), computed in float32."""
    features = _f32(features)
    shape = tf.shape(features)
    n, h, w, d = shape[0], shape[1], shape[2], shape[3]
    flat = tf.reshape(features, tf.stack([n, h * w, d]))
    norm = tf.cast(h * w * d, tf.float32)
    return tf.matmul(flat, flat, transpose_a=True) / norm


def cycle_perceptual_loss(features_real: Sequence, features_rec: Sequence, layer_weights: Sequence[float]) -> tf.Tensor:
    """sum_i lambda_i * mean|phi_i(x) - phi_i(x_rec)| for one cycle."""
    terms = [w * l1(fr, fc) for w, fr, fc in zip(layer_weights, features_real, features_rec) if w]
    return tf.add_n(terms) if terms else tf.constant(0.0)


def cycle_style_loss(features_real: Sequence, features_rec: Sequence, layer_weights: Sequence[float]) -> tf.Tensor:
    """sum_i lambda_i * ||Gram_i(x) - Gram_i(x_rec)||_F^2 for one cycle (averaged over the batch)."""
    terms = []
    for w, fr, fc in zip(layer_weights, features_real, features_rec):
        if w:
            diff = gram_matrix(fr) - gram_matrix(fc)
            terms.append(w * tf.reduce_mean(tf.reduce_sum(tf.square(diff), axis=[1, 2])))
    return tf.add_n(terms) if terms else tf.constant(0.0)


def bce_with_logits(logits, label: float) -> tf.Tensor:
    """Mean sigmoid cross-entropy of ``logits`` against a constant ``label``."""
    logits = _f32(logits)
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.fill(tf.shape(logits), label),
                                                                  logits=logits))


def nonsaturating_generator_loss(fake_logits) -> tf.Tensor:
    """UNIT's generator GAN loss: cross-entropy of D(fake) against 1."""
    return bce_with_logits(fake_logits, 1.0)


def nonsaturating_discriminator_loss(real_logits, fake_logits) -> tf.Tensor:
    """UNIT's discriminator loss: cross-entropy of D(real) against 1 plus D(fake) against 0."""
    return bce_with_logits(real_logits, 1.0) + bce_with_logits(fake_logits, 0.0)


def kl_loss(z) -> tf.Tensor:
    """UNIT's KL term with unit-variance posterior: mean(z^2) of the sampled code (taki0112)."""
    return tf.reduce_mean(tf.square(_f32(z)))


# MIND (modality independent neighbourhood descriptor, Heinrich et al. 2012, Med. Image Anal. 16(7)) in 2D: for each
# pixel and each of its four neighbours r, exp(-D_r / V), D_r the Gaussian-weighted patch distance between the image
# and itself shifted by r, V the mean of D_r over the four, normalised by the largest of the four. It describes where
# local structure is, not its intensity or sign, so an input and its translation into another modality can be
# compared with it (the structure-consistency loss of Yang et al. 2018, "Unpaired brain MR-to-CT synthesis using a
# structure-constrained CycleGAN").
MIND_OFFSETS = ((0, 1), (1, 0), (0, -1), (-1, 0))
MIND_SIGMA_PX = 1.0     # the patch: a Gaussian of 1 pixel
MIND_SMOOTH_MM = 8.0    # both images are first smoothed by a Gaussian of this sigma (anatomy's scale, not noise's)
MIND_RELATIVE_FLOOR = 1e-3   # V is at least this fraction of its image mean (as in MIND-SSC, Heinrich et al. 2013)
MIND_FLOOR = 1e-6            # and at least this (model range squared): flat regions give uninformative descriptors


def gaussian_smooth(images, sigma: float) -> tf.Tensor:
    """(N, H, W, 1) float32 images smoothed by a Gaussian of ``sigma`` pixels (symmetric borders)."""
    kernel = _gaussian_kernel(sigma)
    pad = kernel.shape[0] // 2
    return tf.nn.conv2d(tf.pad(_f32(images), [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="SYMMETRIC"), kernel,
                        strides=1, padding="VALID")


def _gaussian_kernel(sigma: float) -> tf.Tensor:
    radius = max(1, int(round(3 * sigma)))
    x = tf.range(-radius, radius + 1, dtype=tf.float32)
    g = tf.exp(-0.5 * tf.square(x / sigma))
    g = g / tf.reduce_sum(g)
    return tf.reshape(tf.tensordot(g, g, axes=0), [2 * radius + 1, 2 * radius + 1, 1, 1])


def mind_descriptor(images, sigma: float = MIND_SIGMA_PX, relative_floor: float = MIND_RELATIVE_FLOOR,
                    floor: float = MIND_FLOOR) -> tf.Tensor:
    """(N, H, W, 4) MIND descriptors of (N, H, W, 1) images in model range (float32). ``sigma``: the patch's
    Gaussian (pixels). V is bounded below by ``relative_floor`` times its mean over the image, so that the
    descriptor does not change when the whole image's contrast is scaled (a fixed floor would hide faint tissue
    contrast in a wide window), plus ``floor``, so that regions flat to within ~sqrt(floor) give uninformative
    descriptors (all near 1)."""
    x = _f32(images)
    padded = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")
    h, w = tf.shape(x)[1], tf.shape(x)[2]
    shifted = [padded[:, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w, :] for dy, dx in MIND_OFFSETS]
    d = tf.concat([gaussian_smooth(tf.square(x - s), sigma) for s in shifted], axis=-1)
    v = tf.reduce_mean(d, axis=-1, keepdims=True)
    v = tf.maximum(v, relative_floor * tf.reduce_mean(v, axis=[1, 2, 3], keepdims=True)) + floor
    mind = tf.exp(-d / v)
    return mind / tf.reduce_max(mind, axis=-1, keepdims=True)


def structure_loss(source, translated, smooth_px: float = 0.0) -> tf.Tensor:
    """mean |MIND(source) - MIND(translated)|, both first smoothed by a Gaussian of ``smooth_px`` pixels (0: not):
    does the translation keep the source's local structure? The smoothing keeps the term to anatomy: on the pixel
    scale a PET's descriptors are its noise, which a translation can only imitate, e.g. with a lattice of lines."""
    if smooth_px > 0:
        source, translated = gaussian_smooth(source, smooth_px), gaussian_smooth(translated, smooth_px)
    return l1(mind_descriptor(source), mind_descriptor(translated))
