"""The look-up reference row, the hierarchical (subjects x seeds) bootstrap and the multi-seed headline table."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from skimage.metrics import structural_similarity

from cycle_medgan_tf.evaluation import stats
from cycle_medgan_tf.evaluation.combine import combine_seeds
from cycle_medgan_tf.evaluation.lookup import best_training_slices
from cycle_medgan_tf.evaluation.table import render_comparisons, verdict


def smooth_images(n: int, seed: int, size: int = 32) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(gaussian_filter(rng.standard_normal((n, size, size)), (0, 2, 2)) * 5, -1, 1).astype(np.float32)


# --- look-up ---

def test_lookup_finds_exact_copies():
    training = smooth_images(40, 0)
    pick = [3, 17, 39, 0]
    assert best_training_slices(training[pick], training).tolist() == pick


def test_lookup_equals_brute_force_reference():
    training = smooth_images(30, 1)
    targets = np.clip(training[[2, 9, 21]] + 0.3 * smooth_images(3, 2), -1, 1)
    chosen = best_training_slices(targets, training, candidates=5)
    for target, index in zip(targets, chosen):
        mse = np.mean((training - target) ** 2, axis=(1, 2))
        top = np.argsort(mse, kind="stable")[:5]
        scores = [structural_similarity((target + 1) / 2, (training[k] + 1) / 2, data_range=1.0,
                                        gaussian_weights=True, sigma=1.5, use_sample_covariance=False) for k in top]
        assert index == top[int(np.argmax(scores))]


def test_lookup_rejects_mismatched_sizes():
    with pytest.raises(ValueError, match="same image size"):
        best_training_slices(smooth_images(2, 0, 32), smooth_images(3, 0, 16))


# --- hierarchical bootstrap ---

def paired_matrices(rng, effect: float, seeds: int = 3, subjects: int = 8, seed_sd: float = 0.01):
    """Per-seed per-subject means of two models sharing subject difficulty; ``a`` is better by ``effect``."""
    difficulty = rng.normal(0.75, 0.05, subjects)
    a = difficulty + effect + rng.normal(0, seed_sd, (seeds, 1)) + rng.normal(0, 0.01, (seeds, subjects))
    b = difficulty + rng.normal(0, seed_sd, (seeds, 1)) + rng.normal(0, 0.01, (seeds, subjects))
    return a, b


def test_known_effect_is_found():
    a, b = paired_matrices(np.random.default_rng(0), effect=0.04)
    result = stats.bootstrap_difference(a, b)
    assert result["significant"] is True
    assert 0 < result["ci95"][0] < result["diff"] < result["ci95"][1]
    assert result["diff"] == pytest.approx(0.04, abs=0.02)
    assert result["diff"] == pytest.approx(np.mean(a) - np.mean(b))
    assert result == stats.bootstrap_difference(a, b)                     # deterministic


def test_no_effect_is_covered_in_most_repetitions():
    rng = np.random.default_rng(1)
    covered = [not stats.bootstrap_difference(*paired_matrices(rng, 0.0), n_resamples=2000)["significant"]
               for _ in range(40)]
    assert np.mean(covered) >= 0.8


def test_seed_variability_widens_the_interval():
    rng = np.random.default_rng(2)
    calm = paired_matrices(rng, 0.02, seed_sd=0.0)
    noisy = (calm[0] + np.array([[0.03], [-0.03], [0.0]]), calm[1])          # same subjects, unstable seeds
    width = [np.diff(stats.bootstrap_difference(*m)["ci95"])[0] for m in (calm, noisy)]
    assert width[1] > 2 * width[0]


def test_one_seed_still_gives_a_subject_level_interval():
    a, b = paired_matrices(np.random.default_rng(3), effect=0.05, seeds=1)
    result = stats.bootstrap_difference(a, b)
    assert result["significant"] is True and result["ci95"][0] > 0
    one = stats.bootstrap_difference(a[:, :1], b[:, :1])
    assert one["ci95"] is None and one["significant"] is None and one["diff"] is not None


def test_subject_matrix_and_nan_handling():
    matrix, ids = stats.subject_matrix([np.array([1.0, 3.0, np.inf]), np.array([2.0, 2.0, 5.0])], ["s1", "s1", "s0"])
    assert ids == ["s0", "s1"]
    assert np.isnan(matrix[0, 0]) and matrix[0, 1] == 2.0 and matrix.tolist()[1] == [5.0, 2.0]
    assert stats.bootstrap_mean_ci(matrix) is not None


# --- headline table over seeds ---

def per_slice(rng, offset: float, n: int = 12):
    return {"ssim": 0.7 + offset + rng.normal(0, 0.01, n), "psnr": 20 + 10 * offset + rng.normal(0, 0.3, n)}


def test_combine_seeds_means_spreads_and_comparisons():
    rng = np.random.default_rng(4)
    subjects = [f"petct-{i // 3:03d}" for i in range(12)]
    per_seed = {f"seed_{s}": {"CycleGAN": per_slice(rng, 0.0), "Cycle-MedGAN": per_slice(rng, 0.002)}
                for s in range(3)}
    reference = {"Identity": per_slice(rng, -0.4)}
    result = combine_seeds("pet_ct", per_seed, reference, subjects, ["ssim", "psnr"])
    assert list(result["models"]) == ["CycleGAN", "Cycle-MedGAN", "Identity"]
    cm = result["models"]["Cycle-MedGAN"]["ssim"]
    seed_means = [np.mean(per_seed[f"seed_{s}"]["Cycle-MedGAN"]["ssim"]) for s in range(3)]
    assert cm["mean"] == pytest.approx(np.mean(seed_means)) and cm["std"] == pytest.approx(np.std(seed_means, ddof=1))
    assert result["spread"] == "seeds" and result["models"]["Identity"]["ssim"]["std"] is None
    assert result["seeds"]["CycleGAN"] == ["seed_0", "seed_1", "seed_2"]
    subject_mean = np.mean([per_seed[f"seed_{s}"]["CycleGAN"]["ssim"][:3].mean() for s in range(3)])
    assert result["per_subject"]["CycleGAN"]["petct-000"]["ssim"] == pytest.approx(subject_mean)
    by_pair = {(c["metric"], c["b"]): c for c in result["comparisons"]}
    assert by_pair[("ssim", "Identity")]["significant"] is True
    assert verdict(by_pair[("ssim", "Identity")]) == "significant, Cycle-MedGAN better"
    text = render_comparisons(result)
    assert "− CycleGAN" in text and "− Identity" in text
    if not by_pair[("ssim", "CycleGAN")]["significant"]:
        assert "not significant" in text


def test_combine_one_seed_keeps_the_slice_spread():
    rng = np.random.default_rng(5)
    subjects = [f"s{i // 4}" for i in range(12)]
    values = per_slice(rng, 0.0)
    result = combine_seeds("pet_ct", {"seed_0": {"CycleGAN": values}}, {}, subjects, ["ssim", "psnr"])
    assert result["spread"] == "slices" and result["comparisons"] == []
    assert result["models"]["CycleGAN"]["ssim"]["std"] == pytest.approx(np.std(values["ssim"], ddof=1))
