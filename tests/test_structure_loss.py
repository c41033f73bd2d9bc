"""The optional MIND structure-consistency loss (``--lambda_structure``; Heinrich et al. 2012, Yang et al. 2018):
blind to contrast and its sign, not to where structure is; its smoothing removes the reward for imitating the
source's noise with a lattice; flat regions are uninformative, not NaN; in the trainer the value it claims, with
gradients into both generators (off in both faithful models, old records: tests/test_catalogue.py)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from scipy import ndimage

from cycle_medgan_tf import losses
from cycle_medgan_tf.config import resolve_config
from cycle_medgan_tf.training.cycle import CycleTrainer
from tests.conftest import synthetic_info

INFO = synthetic_info()


def _blobs(seed, size=32):
    """(1, size, size, 1) smooth random structure in about [-1, 1]."""
    noise = np.random.default_rng(seed).normal(size=(size, size))
    image = ndimage.gaussian_filter(noise, 2.0)
    return (image / np.abs(image).max())[None, :, :, None].astype(np.float32)


def test_descriptor_ignores_contrast_and_its_sign():
    x = _blobs(0)
    mind = losses.mind_descriptor(x).numpy()
    assert mind.shape == (1, 32, 32, 4) and np.isfinite(mind).all()
    np.testing.assert_allclose(losses.mind_descriptor(0.3 - x).numpy(), mind, atol=1e-5)     # reversed, shifted
    assert float(losses.structure_loss(x, 0.5 * x + 0.2)) < 0.01                               # half the contrast


def test_loss_sees_where_structure_is():
    x = _blobs(1)
    same_place = float(losses.structure_loss(x, -x))
    moved = float(losses.structure_loss(x, np.roll(x, 3, axis=2)))
    other = float(losses.structure_loss(x, _blobs(2)))
    flat = float(losses.structure_loss(x, np.zeros_like(x)))
    noise = float(losses.structure_loss(x, np.random.default_rng(3).uniform(-1, 1, x.shape).astype(np.float32)))
    assert same_place < 1e-5
    assert min(moved, other, flat, noise) > 0.05, (moved, other, flat, noise)


def test_smoothing_takes_away_the_reward_for_a_lattice():
    """On the pixel scale a noisy source's descriptors are its noise; a lattice of lines imitates them better than
    the noiseless truth does (what a trained generator found); after the 8 mm smoothing it gains nothing material."""
    rng = np.random.default_rng(0)
    structure = ndimage.gaussian_filter(np.random.default_rng(1).normal(size=(64, 64)), 3.0)
    structure = structure / np.abs(structure).max()
    pet = (0.5 * structure + rng.normal(0, 0.1, structure.shape))[None, :, :, None].astype(np.float32)
    ct = (-0.2 + 0.1 * structure)[None, :, :, None].astype(np.float32)
    grid = np.zeros((64, 64), np.float32)
    grid[::4, :] = grid[:, ::4] = 0.02
    lattice = ct + grid[None, :, :, None]
    raw = [float(losses.structure_loss(pet, x)) for x in (ct, lattice)]
    smoothed = [float(losses.structure_loss(pet, x, smooth_px=2.0)) for x in (ct, lattice)]
    assert raw[1] < raw[0] - 0.03, raw
    assert smoothed[1] > smoothed[0] - 0.01, smoothed         # neutral at most (raw: 0.06 better than the truth)


def test_flat_regions_are_uninformative():
    flat = losses.mind_descriptor(tf.fill((2, 16, 16, 1), -1.0)).numpy()
    np.testing.assert_allclose(flat, 1.0)
    faint = np.full((1, 16, 16, 1), 0.2, np.float32) + np.random.default_rng(0).normal(0, 1e-4, (1, 16, 16, 1))
    assert float(losses.structure_loss(faint.astype(np.float32), np.zeros((1, 16, 16, 1), np.float32))) < 0.02


def test_structure_loss_compares_each_translation_with_its_input_and_trains_both_generators():
    trainer = CycleTrainer(resolve_config("cyclegan", "smoke", dict(image_size=32, lambda_structure=5.0)), INFO)
    a, b = tf.constant(_blobs(4)), tf.constant(_blobs(5))
    with tf.GradientTape(persistent=True) as tape:
        out, fake_a, fake_b = trainer.generator_losses(a, b)
    smooth = losses.MIND_SMOOTH_MM / trainer.run_pixel_spacing_mm()      # 8 mm at 8 mm pixels: 1 px
    want = losses.structure_loss(a, fake_b, smooth) + losses.structure_loss(b, fake_a, smooth)
    np.testing.assert_allclose(out["structure"].numpy(), want.numpy(), rtol=1e-5)
    without = out["g_adv_a2b"] + out["g_adv_b2a"] + 10.0 * out["cycle"]
    np.testing.assert_allclose(out["g_total"].numpy(), (without + 5.0 * out["structure"]).numpy(), rtol=1e-5)
    assert set(trainer.weighted_terms(out)) == {"adversarial", "cycle", "structure"}
    for generator in (trainer.g_ab, trainer.g_ba):
        grads = tape.gradient(out["structure"], generator.trainable_variables)
        assert all(g is not None and np.any(g.numpy()) for g in grads), generator.name
    del tape
