"""``bench.error_sources``: each kind of damage to a copied target is charged to its own figure (a wrong
intensity scale to calibration, a blur to fine detail, a smooth bias field to coarse structure; blur lowers the
detail ratio, noise raises it), and the parts add up to the error; the command
prints Identity and each run with subject-level differences; bad input is one line."""

from __future__ import annotations

import json

import numpy as np
from scipy import ndimage

from cycle_medgan_tf.bench.error_sources import error_sources
from cycle_medgan_tf.export import export_translators
from tests.conftest import run_module
from tests.test_evaluate import manifest, tiny_translator, write_small_store
from tests.test_versus_identity import _copier

WINDOW = (-3.0, 5.0)


def _heads(n=6, size=64, seed=0):
    """Textured discs in z-score units and their masks."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    disc = np.hypot(yy - size / 2, xx - size / 2) < size * 0.35
    texture = ndimage.gaussian_filter(rng.normal(0, 1, (n, size, size)), (0, 1.2, 1.2)) * 4
    images = np.where(disc, 1.0 + texture, -2.5)
    return images, np.broadcast_to(disc, images.shape).copy()


def _deficit(reference: dict, damaged: dict, key: str) -> float:
    return float(np.mean(reference[key] - damaged[key]))


def _excess(damaged: dict, reference: dict, key: str) -> float:
    return float(np.mean(damaged[key] - reference[key]))


def test_each_damage_is_charged_to_its_own_figure():
    target, mask = _heads()
    noisy_copy = target + np.random.default_rng(1).normal(0, 0.05, target.shape)       # an Identity-like input
    identity = error_sources(target, noisy_copy, mask, WINDOW)
    assert np.all(np.isfinite(identity["psnr_head"])) and np.allclose(identity["gain"], 1.0, atol=0.02)

    rescaled = error_sources(target, 0.8 * noisy_copy + 0.3, mask, WINDOW)     # wrong scale only
    assert _deficit(identity, rescaled, "psnr_head") > 3.0
    assert abs(_deficit(identity, rescaled, "psnr_calibrated")) < 0.05
    assert np.allclose(rescaled["gain"], 1 / 0.8, rtol=0.03)

    blurred = error_sources(target, ndimage.gaussian_filter(noisy_copy, (0, 1.5, 1.5)), mask, WINDOW)
    assert _excess(blurred, identity, "mse_fine") > 3 * _excess(blurred, identity, "mse_coarse") > 0
    assert np.all(blurred["detail_ratio"] < 0.7) and np.all(np.abs(identity["detail_ratio"] - 1) < 0.1)
    noisier = error_sources(target, noisy_copy + np.random.default_rng(2).normal(0, 0.5, target.shape), mask, WINDOW)
    assert np.all(noisier["detail_ratio"] > 1.3)

    field = 0.6 * np.cos(2 * np.pi * np.mgrid[:64, :64][0] / 64.0)
    field -= field[mask[0]].mean()                                  # a smooth bias field, zero mean in the head
    biased = error_sources(target, noisy_copy + field, mask, WINDOW)
    assert _excess(biased, identity, "mse_coarse") > 3 * _excess(biased, identity, "mse_fine")
    assert _excess(biased, identity, "mse_coarse") > 0.5 * _excess(biased, identity, "mse_head")
    parts = biased["mse_scale"] + biased["mse_coarse"] + biased["mse_fine"]
    assert np.allclose(parts, biased["mse_head"], rtol=0.15)           # the parts add up (small cross term)

    empty = error_sources(target, noisy_copy, np.zeros_like(mask), WINDOW)
    assert np.all(np.isnan(empty["psnr_head"]))


def test_the_command_prints_identity_then_each_run_with_its_difference(tmp_path):
    store = write_small_store(tmp_path / "small.h5")
    copy_run, damage_run = str(tmp_path / "copy"), str(tmp_path / "damage")
    export_translators(copy_run, {"a2b": _copier()}, manifest("cyclegan"))
    export_translators(damage_run, {"a2b": tiny_translator(-1.2, 0)}, manifest("cyclegan"))
    result = run_module("cycle_medgan_tf.bench.error_sources", f"--data={store}",
                        f"--runs=cyclegan={copy_run}+{damage_run}")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert [line["row"] for line in lines] == ["Identity", f"cyclegan:{copy_run}", f"cyclegan:{damage_run}"]
    identity, copy, damage = lines
    assert copy["psnr_head"] == identity["psnr_head"] and copy["minus_identity"]["psnr_head"]["diff"] == 0.0
    assert copy["minus_identity"]["psnr_calibrated"]["significant"] is False
    assert damage["minus_identity"]["psnr_head"]["diff"] < 0 and damage["minus_identity"]["psnr_head"]["significant"]
    assert "minus_identity" not in identity and identity["slices"] > 0

    missing = run_module("cycle_medgan_tf.bench.error_sources", f"--data={store}",
                         f"--runs=cyclegan={tmp_path / 'none'}")
    assert missing.returncode == 2 and missing.stderr.count("error:") == 1 and "Traceback" not in missing.stderr
    bare = run_module("cycle_medgan_tf.bench.error_sources", f"--data={store}")
    assert bare.returncode == 2 and "error: --data and --runs are required" in bare.stderr
