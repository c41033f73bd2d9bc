"""Summary statistics for Table I: means, bootstrap confidence intervals, per-subject means, paired tests,
and the hierarchical (subjects x seeds) bootstrap of the multi-seed headline table.

Non-finite values (PSNR of an exact copy is +inf; VIF of a reference without any variance is NaN) are left out
of every statistic; ``summarize`` reports how many values were used.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np

BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 20190801        # fixed: the same data always give the same interval
CONFIDENCE = 0.95
MIN_NONZERO_PAIRS = 6            # below this a two-sided exact signed-rank p-value cannot fall under 0.05
_BOOTSTRAP_BLOCK = 2_000_000     # indices drawn at a time (memory bound for large N)


def finite(values) -> np.ndarray:
    """The finite entries of ``values`` as float64."""
    values = np.asarray(values, dtype=np.float64).ravel()
    return values[np.isfinite(values)]


def bootstrap_ci(values, n_resamples: int = BOOTSTRAP_RESAMPLES, confidence: float = CONFIDENCE,
                 seed: int = BOOTSTRAP_SEED) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the mean (vectorised, deterministic); None for fewer than 2 values."""
    values = finite(values)
    n = len(values)
    if n < 2:
        return None
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    rows = max(1, _BOOTSTRAP_BLOCK // n)
    for start in range(0, n_resamples, rows):
        stop = min(n_resamples, start + rows)
        means[start:stop] = values[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def summarize(values) -> dict:
    """``{"mean", "std", "ci95", "n"}`` of the finite values; std is the sample standard deviation (ddof 1)."""
    used = finite(values)
    if len(used) == 0:
        return {"mean": None, "std": None, "ci95": None, "n": 0}
    std = float(np.std(used, ddof=1)) if len(used) > 1 else None
    ci = bootstrap_ci(used)
    return {"mean": float(np.mean(used)), "std": std, "ci95": list(ci) if ci else None, "n": int(len(used))}


def per_subject_means(values, subjects: Sequence[str]) -> dict[str, float | None]:
    """Mean of the finite values of each subject, keyed by subject id in sorted order."""
    values = np.asarray(values, dtype=np.float64).ravel()
    subjects = np.asarray(subjects).astype(str).ravel()
    if len(values) != len(subjects):
        raise ValueError(f"{len(values)} values but {len(subjects)} subject ids")
    out = {}
    for subject in sorted(set(subjects.tolist())):
        used = finite(values[subjects == subject])
        out[subject] = float(np.mean(used)) if len(used) else None
    return out


def paired_wilcoxon(a, b) -> dict:
    """Two-sided Wilcoxon signed-rank test of paired values ``a`` against ``b``.

    Returns ``{"p_value", "statistic", "mean_diff", "n", "reason"}`` with ``mean_diff`` = mean(a - b) over the
    pairs where both are finite. ``p_value`` is None, with a ``reason``, when every difference is zero or when
    there are too few non-zero differences for the test to be informative.
    """
    from scipy.stats import wilcoxon

    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in length: {len(a)} and {len(b)}")
    keep = np.isfinite(a) & np.isfinite(b)
    diff = a[keep] - b[keep]
    result = {"p_value": None, "statistic": None, "mean_diff": float(np.mean(diff)) if len(diff) else None,
              "n": int(len(diff)), "reason": None}
    nonzero = int(np.count_nonzero(diff))
    if len(diff) == 0:
        result["reason"] = "no pairs with finite values"
    elif nonzero == 0:
        result["reason"] = "all paired differences are zero"
    elif nonzero < MIN_NONZERO_PAIRS:
        result["reason"] = (f"only {nonzero} non-zero paired differences (need {MIN_NONZERO_PAIRS} for a "
                            "two-sided p-value that can fall below 0.05)")
    else:
        test = wilcoxon(diff, zero_method="wilcox", alternative="two-sided")
        result["p_value"] = float(test.pvalue)
        result["statistic"] = float(test.statistic)
    return result


def subject_matrix(per_seed_values: Sequence, subjects: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """(seeds, subjects) array of per-subject means (NaN where a subject has no finite value) and the ids."""
    ids = sorted(set(np.asarray(subjects).astype(str).tolist()))
    rows = []
    for values in per_seed_values:
        means = per_subject_means(values, subjects)
        rows.append([np.nan if means[s] is None else means[s] for s in ids])
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(ids)), ids


def _resampled_means(matrix: np.ndarray, subject_draws: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mean over resampled seeds (drawn here, independently per matrix) and the given subject draws."""
    seed_draws = rng.integers(0, matrix.shape[0], size=(len(subject_draws), matrix.shape[0]))
    values = matrix[seed_draws[:, :, None], subject_draws[:, None, :]]
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)      # a draw of subjects without finite values -> NaN
        return np.nanmean(values, axis=(1, 2))


def hierarchical_bootstrap(matrices: Sequence[np.ndarray], n_resamples: int = BOOTSTRAP_RESAMPLES,
                           seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """(n_resamples, len(matrices)) bootstrap means of (seeds, subjects) matrices over the same subjects.

    Each resample draws the subjects with replacement once, jointly for every matrix (the rows are paired), and
    the seeds with replacement independently for each matrix; its statistic is the mean over the drawn seeds and
    subjects (every subject weighs the same; non-finite entries are left out).
    """
    matrices = [np.asarray(m, dtype=np.float64) for m in matrices]
    n_subjects = matrices[0].shape[1]
    if any(m.ndim != 2 or m.shape[1] != n_subjects or m.shape[0] < 1 for m in matrices):
        raise ValueError("every matrix must be (seeds >= 1, subjects) with the same subjects")
    rng = np.random.default_rng(seed)
    out = np.empty((n_resamples, len(matrices)))
    rows = max(1, _BOOTSTRAP_BLOCK // max(1, n_subjects * max(m.shape[0] for m in matrices)))
    for start in range(0, n_resamples, rows):
        stop = min(n_resamples, start + rows)
        subject_draws = rng.integers(0, n_subjects, size=(stop - start, n_subjects))
        for j, matrix in enumerate(matrices):
            out[start:stop, j] = _resampled_means(matrix, subject_draws, rng)
    return out


def _interval(samples: np.ndarray, confidence: float) -> list[float] | None:
    samples = samples[np.isfinite(samples)]
    if len(samples) == 0:
        return None
    alpha = (1.0 - confidence) / 2.0
    return [float(v) for v in np.quantile(samples, [alpha, 1.0 - alpha])]


def _finite_mean(matrix: np.ndarray) -> float | None:
    used = finite(matrix)
    return float(np.mean(used)) if len(used) else None


def bootstrap_mean_ci(matrix, confidence: float = CONFIDENCE, **kwargs) -> list[float] | None:
    """Hierarchical-bootstrap interval of the subject-level mean of one (seeds, subjects) matrix."""
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.shape[1] < 2 and matrix.shape[0] < 2:
        return None
    return _interval(hierarchical_bootstrap([matrix], **kwargs)[:, 0], confidence)


def bootstrap_difference(a, b, confidence: float = CONFIDENCE, **kwargs) -> dict:
    """Subject-level difference mean(a) - mean(b) of two (seeds, subjects) matrices with its bootstrap interval.

    Returns ``{"diff", "ci95", "significant"}``; ``significant`` is False when the interval contains 0 and None
    when there is no interval (fewer than 2 subjects and seeds, or no finite values).
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    mean_a, mean_b = _finite_mean(a), _finite_mean(b)
    diff = None if mean_a is None or mean_b is None else mean_a - mean_b
    ci = None
    if diff is not None and (a.shape[1] >= 2 or max(a.shape[0], b.shape[0]) >= 2):
        draws = hierarchical_bootstrap([a, b], **kwargs)
        ci = _interval(draws[:, 0] - draws[:, 1], confidence)
    significant = None if ci is None else not (ci[0] <= 0.0 <= ci[1])
    return {"diff": diff, "ci95": ci, "significant": significant}
