"""The brain-texture diagnostic: it sees noise and flattening inside the brain, and its CLI runs on exports."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
from scipy import ndimage

from cycle_medgan_tf.bench.brain_texture import brain_mask, texture
from tests.conftest import REPO
from tests.test_evaluate import head_ct, manifest, tiny_translator, write_small_store


def test_texture_separates_noise_and_flattening_from_the_truth():
    target = head_ct(6, seed=3)
    mask = brain_mask(target, "CT", (-1000.0, 2000.0))
    assert mask.sum() > 500
    same = texture(target, target, mask)
    assert same["laplacian_ratio"] == 1.0 and same["brain_mae_hu"] == 0.0
    noisy = texture(target + np.random.default_rng(0).normal(0, 40, target.shape), target, mask)
    assert noisy["laplacian_ratio"] > 3.0 and noisy["brain_std_hu"] > 2 * same["brain_std_hu"]
    around = np.stack([ndimage.binary_dilation(m) for m in mask])     # the stencil's reach
    flat = texture(np.where(around, 30.0, target), target, mask)
    assert flat["brain_std_hu"] < 0.1 and flat["laplacian_ratio"] < 0.2


def test_interior_and_structure_tell_the_skulls_edge_and_another_brain_from_the_brain():
    """A bone edge one pixel into the brain inflates the brain's spread but not the interior's; the structure
    figure passes the target blurred and rejects a flat brain, noise, a flipped contrast and another subject's
    brain."""
    from cycle_medgan_tf.bench.brain_texture import interior_mask

    target = head_ct(8, seed=3)
    mask = brain_mask(target, "CT", (-1000.0, 2000.0))
    edge = mask & ~np.stack([ndimage.binary_erosion(m) for m in mask])
    assert interior_mask(mask).sum() > 300
    shifted_skull = texture(np.where(edge, 900.0, target), target, mask)
    truth = texture(target, target, mask)
    assert shifted_skull["brain_std_hu"] > 10 * truth["brain_std_hu"]
    assert shifted_skull["interior_std_hu"] == truth["interior_std_hu"] and shifted_skull["structure_corr"] > 0.99
    blurred = np.stack([ndimage.gaussian_filter(s, 1.0) for s in target])
    assert texture(np.where(mask, blurred, target), target, mask)["structure_corr"] > 0.8
    rng = np.random.default_rng(0)
    assert abs(texture(np.where(mask, 30.0, target), target, mask)["structure_corr"]) < 1e-6
    assert abs(texture(target * 0 + 30 + rng.normal(0, 20, target.shape), target, mask)["structure_corr"]) < 0.2
    assert texture(np.where(mask, 60.0 - target, target), target, mask)["structure_corr"] < -0.8
    other_subject = head_ct(8, seed=4)
    assert abs(texture(other_subject, target, mask)["structure_corr"]) < 0.3


def test_lattice_share_rejects_a_pixel_lattice_and_passes_texture_and_noise():
    """A checkerboard or stripes of period 2 of 3 HU, even with its phase flipping every 8 pixels, raises the
    lattice share far above the brain's own; noise of 5 HU and another subject's brain do not."""
    from cycle_medgan_tf.bench.brain_texture import interior_mask, lattice_share

    target = head_ct(8, seed=3)
    inner = interior_mask(brain_mask(target, "CT", (-1000.0, 2000.0)))

    def share(images):
        return np.mean([lattice_share(p, m) for p, m in zip(images, inner) if m.sum() >= 20])

    y, x = np.indices(target.shape[1:])
    flips = np.where((y // 8 + x // 8) % 2, -1.0, 1.0)
    truth = share(target)
    assert share(target + 3.0 * np.where((x + y) % 2, -1.0, 1.0) * flips) > 1.8 * truth
    assert share(target + 3.0 * np.where(x % 2, -1.0, 1.0)) > 4 * truth
    noise = np.random.default_rng(0).normal(0, 5, target.shape)
    assert share(target + noise) < 1.3 * truth and share(head_ct(8, seed=4)) < 1.3 * truth


def test_streak_bias_rejects_stripes_along_either_axis_and_passes_noise_and_another_brain():
    """Stripes of 5 HU and period 4 pixels move the streak bias well away from the brain's own, vertical ones up and
    horizontal ones down; 5 HU of noise and another subject's brain stay near it."""
    from cycle_medgan_tf.bench.brain_texture import interior_mask, streak_bias

    target = head_ct(8, seed=3)
    inner = interior_mask(brain_mask(target, "CT", (-1000.0, 2000.0)))

    def bias(images):
        return np.mean([streak_bias(p, m) for p, m in zip(images, inner) if m.sum() >= 20])

    y, x = np.indices(target.shape[1:])
    truth = bias(target)
    assert abs(truth) < 0.2
    assert bias(target + 5.0 * np.sin(2 * np.pi * x / 4)) > truth + 0.2
    assert bias(target + 5.0 * np.sin(2 * np.pi * y / 4)) < truth - 0.2
    assert abs(bias(target + np.random.default_rng(0).normal(0, 5, target.shape)) - truth) < 0.05
    assert abs(bias(head_ct(8, seed=4)) - truth) < 0.05


def test_tissue_contrasts_pass_the_blurred_truth_and_reject_flat_reversed_and_another_brain():
    """Ventricles darker than white matter and grey matter brighter, by the target's margin: 1 for the target, most
    of it for the target blurred, 0 for a flat brain, negative for the pattern reversed, little for another
    subject's brain."""
    from cycle_medgan_tf.bench.brain_texture import interior_mask, tissue_contrasts

    target = head_ct(8, seed=3)
    mask = brain_mask(target, "CT", (-1000.0, 2000.0))
    inner = interior_mask(mask)

    def contrasts(prediction):
        return tissue_contrasts(prediction, target, inner)

    assert contrasts(target) == {"ventricle_contrast": 1.0, "grey_white_contrast": 1.0}
    blurred = contrasts(np.stack([ndimage.gaussian_filter(s, 1.0) for s in target]))
    assert all(0.6 < v < 1.0 for v in blurred.values()), blurred
    assert all(v == 0.0 for v in contrasts(np.full_like(target, 30.0)).values())
    assert all(v < -0.9 for v in contrasts(60.0 - target).values())
    other = head_ct(8, seed=4)                 # its brain, in this head (its skull would add noise, not contrast)
    another_brain = contrasts(np.where(mask & brain_mask(other, "CT", (-1000.0, 2000.0)), other, 30.0))
    assert all(abs(v) < 0.3 for v in another_brain.values()), another_brain


def test_cli_prints_one_line_per_run(tmp_path):
    from cycle_medgan_tf.export import export_translators

    store = write_small_store(tmp_path / "small.h5")
    run = str(tmp_path / "run")
    export_translators(run, {"a2b": tiny_translator(-1.2, 0), "b2a": tiny_translator(1.2, 0)}, manifest("cyclegan"))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-m", "cycle_medgan_tf.bench.brain_texture", f"--data={store}",
                             f"--runs=cyclegan={run}"], capture_output=True, text=True, timeout=300, cwd=REPO, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert [line["run"] for line in lines] == ["target", "lookup", "cyclegan"]
    assert lines[1]["structure_corr"] < 0.5 and lines[0]["structure_corr"] == 1.0
    assert lines[2]["cycle_l1_noisy"] > 0 and "laplacian_ratio" in lines[2]
    bad = subprocess.run([sys.executable, "-m", "cycle_medgan_tf.bench.brain_texture", f"--data={store}",
                          f"--runs=cyclegan={tmp_path / 'missing'}"], capture_output=True, text=True, timeout=300,
                         cwd=REPO, env=env)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr


def _blur_translator(sigma: float):
    """A fixed Gaussian-blur conv + tanh: its output ignores the input's pixel noise."""
    import keras

    from tests.test_evaluate import SIZE

    r = np.arange(-3, 4)
    taps = np.exp(-0.5 * (r[:, None] ** 2 + r[None, :] ** 2) / sigma ** 2)
    model = keras.Sequential([keras.Input((SIZE, SIZE, 1)), keras.layers.Conv2D(1, 7, padding="same",
                                                                               activation="tanh")])
    model.layers[-1].set_weights([(1.2 * taps / taps.sum()).astype(np.float32)[..., None, None],
                                  np.zeros(1, np.float32)])
    return model


def test_input_noise_probe_tells_passed_on_noise_from_a_texture_of_its_own(tmp_path):
    """A near-pointwise translator passes the PET's pixel noise into the CT (low Laplacian correlation between
    translations of the noisy and the smoothed input; the cycle recovers the input's detail only from the noisy
    one); a blurring translator does not (correlation near 1)."""
    from cycle_medgan_tf.bench.brain_texture import input_noise_probe
    from cycle_medgan_tf.data.store import to_model_range
    from cycle_medgan_tf.export import export_translators
    from tests.test_evaluate import WINDOW_A, pet_from_ct

    target = head_ct(12, seed=5)
    noisy_pet = pet_from_ct(target) + np.random.default_rng(1).normal(0, 0.4, target.shape).astype(np.float32)
    inputs = to_model_range(noisy_pet, WINDOW_A)
    mask = brain_mask(target, "CT", (-1000.0, 2000.0))
    results = {}
    for name, (g, f) in {"pointwise": (tiny_translator(1.2, 0), tiny_translator(1.2, 1)),
                         "blurring": (_blur_translator(2.0), tiny_translator(1.2, 1))}.items():
        run = str(tmp_path / name)
        export_translators(run, {"a2b": g, "b2a": f}, manifest("cyclegan"))
        fake = np.clip(g.predict(inputs[..., None], verbose=0)[..., 0], -1, 1)
        rec = np.clip(f.predict(fake[..., None], verbose=0)[..., 0], -1, 1)
        results[name] = input_noise_probe("cyclegan", run, inputs, fake, rec, mask, 1.0)
    assert results["pointwise"]["input_noise_laplacian_corr"] < 0.6
    assert results["pointwise"]["input_noise_rec_detail_corr"] > results["pointwise"][
        "input_noise_rec_detail_corr_smoothed"] + 0.2
    assert results["blurring"]["input_noise_laplacian_corr"] > 0.9
