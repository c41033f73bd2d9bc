"""Tissue-aware metrics against independent references (skimage, NumPy, SciPy), and the cases they must reject."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from scipy.spatial.distance import dice as dice_dissimilarity
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from cycle_medgan_tf.data.store import to_model_range
from cycle_medgan_tf.evaluation.metrics import psnr, ssim
from cycle_medgan_tf.evaluation.tissue import (BONE_WINDOW_HU, BRAIN_WINDOW_HU, CT_METRICS, MASKED_METRICS,
                                               bone_dice, head_mask, masked_errors, masked_psnr, masked_ssim,
                                               tissue_metrics)

CT_WINDOW = (-1000.0, 2000.0)
MR_WINDOW = (0.0, 1.6)
SIZE = 64


def head_phantom(n: int, seed: int, sinus: bool = False, couch: bool = False) -> np.ndarray:
    """(n, 64, 64) head CT in HU: grey/white matter pattern, ventricles, skull of varying density, scalp, air."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE].astype(np.float64)
    out = []
    for _ in range(n):
        cy, cx = SIZE / 2 + rng.uniform(-2, 2, 2)
        r = np.hypot((yy - cy) / (SIZE * 0.33), (xx - cx) / (SIZE * 0.3))
        brain = 32 + 10 * np.tanh(3 * gaussian_filter(rng.standard_normal((SIZE, SIZE)), 2.5) / 0.15)
        brain[np.hypot(yy - cy, (xx - cx) * 2) < 5] = 6.0                          # ventricles (CSF)
        skull = 700 + 600 * gaussian_filter(rng.random((SIZE, SIZE)), 2)
        img = np.select([r < 0.85, r < 1.0, r < 1.07], [brain, skull, 45.0], -1000.0)
        if sinus:
            img[int(cy) - 2:int(cy) + 2, int(cx) - 2:int(cx) + 2] = -900.0         # air pocket inside the head
        if couch:
            img[-4:-2, 8:SIZE - 8] = 200.0                                        # a separate object
        out.append(gaussian_filter(img, 0.5) + rng.normal(0, 2, img.shape))
    return np.stack(out)


def unit(images, window):
    lo, hi = window
    return np.clip((images - lo) / (hi - lo), 0, 1)


TARGET = head_phantom(4, 0)
PRED = TARGET + gaussian_filter(np.random.default_rng(1).normal(0, 30, TARGET.shape), (0, 1, 1)) + 5.0


def test_head_mask_is_the_head_with_holes_filled_and_no_stray_objects():
    ct = head_phantom(2, 3, sinus=True, couch=True)
    mask = head_mask(ct, "CT", CT_WINDOW)
    assert mask[:, SIZE // 2, SIZE // 2].all()                      # the inner air pocket is filled in
    assert not mask[:, -3, SIZE // 2].any()                           # the couch is not part of the head
    assert not mask[:, 0, 0].any()
    head = ct > -500
    head[:, -5:] = False
    assert np.mean(mask[head]) > 0.97 and np.mean(mask[~head & (ct < -950)]) < 0.05


@pytest.mark.parametrize("window", [BRAIN_WINDOW_HU, BONE_WINDOW_HU, (-1000.0, 2000.0)])
def test_masked_ssim_equals_skimage_map_over_the_mask(window):
    mask = head_mask(TARGET, "CT", CT_WINDOW)
    ours = masked_ssim(TARGET, PRED, mask, window)
    for i in range(len(TARGET)):
        _, smap = structural_similarity(unit(TARGET[i], window), unit(PRED[i], window), data_range=1.0,
                                        gaussian_weights=True, sigma=1.5, use_sample_covariance=False, full=True)
        inner = mask[i, 5:-5, 5:-5]
        assert abs(ours[i] - smap[5:-5, 5:-5][inner].mean()) < 1e-8


@pytest.mark.parametrize("window", [BRAIN_WINDOW_HU, BONE_WINDOW_HU])
def test_masked_psnr_equals_skimage_on_the_mask_pixels(window):
    mask = head_mask(TARGET, "CT", CT_WINDOW)
    ours = masked_psnr(TARGET, PRED, mask, window)
    for i in range(len(TARGET)):
        expected = peak_signal_noise_ratio(unit(TARGET[i], window)[mask[i]], unit(PRED[i], window)[mask[i]],
                                           data_range=1.0)
        assert abs(ours[i] - expected) < 1e-9


def test_errors_and_dice_equal_numpy_and_scipy():
    mask = head_mask(TARGET, "CT", CT_WINDOW)
    mae, me = masked_errors(TARGET, PRED, mask)
    dice = bone_dice(TARGET, PRED, mask)
    for i in range(len(TARGET)):
        assert mae[i] == pytest.approx(np.mean(np.abs(PRED[i] - TARGET[i])[mask[i]]), rel=1e-12)
        assert me[i] == pytest.approx(np.mean((PRED[i] - TARGET[i])[mask[i]]), rel=1e-12)
        expected = 1.0 - dice_dissimilarity(TARGET[i][mask[i]] >= 300, PRED[i][mask[i]] >= 300)
        assert dice[i] == pytest.approx(expected, abs=1e-12)
    assert 4.0 < np.mean(me) < 6.0                                      # the +5 HU bias is seen as such


def test_tissue_metrics_of_the_truth_are_perfect():
    values = tissue_metrics(TARGET, TARGET, "CT", CT_WINDOW)
    assert list(values) == [m.key for m in CT_METRICS]
    assert np.all(values["mae_hu"] == 0) and np.all(values["me_hu"] == 0) and np.all(values["dice_bone"] == 1)
    assert np.allclose(values["ssim_brain"], 1) and np.all(np.isinf(values["psnr_brain"]))


def test_flattened_soft_tissue_and_three_levels_score_clearly_worse_in_the_brain_window():
    truth = head_phantom(6, 5)
    good = truth + np.random.default_rng(2).normal(0, 3, truth.shape)          # a close, realistic prediction
    flat = np.where((truth > -200) & (truth < 200), 30.0, truth)
    three = np.select([truth < -500, truth < 300], [-1000.0, 30.0], 1200.0)
    paper_ssim = ssim(to_model_range(truth, CT_WINDOW), to_model_range(flat, CT_WINDOW)).mean()
    assert paper_ssim > 0.95                                            # the paper's SSIM barely notices
    scores = {name: {k: np.mean(v) for k, v in tissue_metrics(truth, p, "CT", CT_WINDOW).items()}
              for name, p in (("good", good), ("flat", flat), ("three", three))}
    for bad in ("flat", "three"):
        assert scores[bad]["ssim_brain"] < 0.7 < scores["good"]["ssim_brain"], bad
        assert scores[bad]["psnr_brain"] < scores["good"]["psnr_brain"] - 5, bad
        assert scores[bad]["mae_hu"] > 2 * scores["good"]["mae_hu"], bad
    assert scores["three"]["ssim_bone"] < scores["good"]["ssim_bone"] - 0.02
    assert scores["three"]["psnr_bone"] < scores["good"]["psnr_bone"] - 10


def test_bone_metrics_see_missing_bone():
    no_bone = np.where(TARGET >= 300, 40.0, TARGET)
    values = tissue_metrics(TARGET, no_bone, "CT", CT_WINDOW)
    assert np.all(values["dice_bone"] == 0) and np.mean(values["ssim_bone"]) < 0.8
    assert np.mean(values["me_hu"]) < -50


def test_mr_metrics_are_masked_and_ignore_the_background():
    mr = np.clip((head_phantom(3, 7) + 1000) / 1000, 0, 1.5)                 # arbitrary units in [0, 1.5]
    background = mr.copy()
    background[:, :4, :] = 0.3                                          # a change outside the head only
    values = tissue_metrics(mr, background, "MR", MR_WINDOW)
    assert list(values) == [m.key for m in MASKED_METRICS]
    assert np.allclose(values["ssim_mask"], 1.0) and np.all(np.isinf(values["psnr_mask"]))
    assert psnr(to_model_range(mr, MR_WINDOW), to_model_range(background, MR_WINDOW)).mean() < 40
    inside = mr * 0.8
    assert np.mean(tissue_metrics(mr, inside, "MR", MR_WINDOW)["psnr_mask"]) < 30


def test_empty_mask_gives_nan_and_bad_units_are_refused():
    air = np.full((1, SIZE, SIZE), -1000.0)
    assert np.all(np.isnan(tissue_metrics(air, air, "CT", CT_WINDOW)["ssim_brain"]))
    with pytest.raises(ValueError, match="HU"):
        tissue_metrics(to_model_range(TARGET, CT_WINDOW), to_model_range(PRED, CT_WINDOW), "CT", CT_WINDOW)
    with pytest.raises(ValueError, match="outside its window"):
        tissue_metrics(TARGET, TARGET, "MR", MR_WINDOW)
    with pytest.raises(ValueError, match="same|both"):
        tissue_metrics(TARGET, TARGET[:2], "CT", CT_WINDOW)
