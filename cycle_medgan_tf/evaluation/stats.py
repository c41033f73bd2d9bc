"""Summary statistics for Table I: means, bootstrap confidence intervals, per-subject means, paired tests.

Non-finite values (PSNR of an exact copy is +inf; VIF of a reference without any variance is NaN) are left out
of every statistic; ``summarize`` reports how many values were used.
"""

from __future__ import annotations

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
