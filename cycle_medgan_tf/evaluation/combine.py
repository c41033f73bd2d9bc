"""The headline Table I over several training seeds, with subject-level comparisons.

Input: per-slice metric values of every trained model for every seed, and of the reference rows (Identity,
Look-up, degraded targets: they do not depend on training, so they count as one "seed"). Output: the
``table1.json`` dictionary of :mod:`cycle_medgan_tf.evaluation.report` plus

- ``"seeds"``: ``{row: [seed labels]}``; ``"notes"``: what the values and spreads are;
- per row and metric: ``mean`` = mean over seeds of the mean over slices (Table I's statistic per seed);
  ``std`` = the spread shown: the sample standard deviation (ddof 1) across seeds of those per-seed means when
  every trained model has at least two seeds, else (one seed) the standard deviation over slices; reference
  rows show no spread when several seeds are combined; ``seed_means``; ``ci95`` = hierarchical bootstrap
  interval of the subject-level mean;
- ``"per_subject"``: per-subject means averaged over seeds;
- ``"comparisons"``: Cycle-MedGAN minus every other row per metric at subject level: ``diff`` = mean over
  subjects of (seed-averaged) subject means minus the same for the other row, ``ci95`` from the hierarchical
  bootstrap (subjects resampled jointly for both rows, since they are paired; seeds resampled independently per
  row), ``significant`` = the interval excludes 0, and a Wilcoxon signed-rank test on the seed-averaged
  subject means (``subject_p_value``; None below ``stats.MIN_NONZERO_PAIRS`` subjects);
- ``"slice_tests"``: the slice-level Wilcoxon tests of each seed (detail only).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from cycle_medgan_tf.evaluation import stats
from cycle_medgan_tf.evaluation.report import TEST_REFERENCE, metric_conventions
from cycle_medgan_tf.evaluation.table import MODEL_NAMES

PerSlice = Mapping[str, np.ndarray]


def _row_runs(per_seed: Mapping[str, Mapping[str, PerSlice]], reference: Mapping[str, PerSlice]):
    """``{row: [(seed label, per-slice values), ...]}``: trained rows in Table I order, then the references."""
    rows: dict[str, list] = {}
    for name in MODEL_NAMES.values():
        runs = [(label, rows_of_seed[name]) for label, rows_of_seed in per_seed.items() if name in rows_of_seed]
        if runs:
            rows[name] = runs
    for name, values in reference.items():
        rows[name] = [("reference", values)]
    return rows


def _summary(runs, key: str, subjects, spread: str) -> dict:
    """Summary of one row and metric; ``spread`` is "seeds", "slices" or "none" (what ``std`` holds)."""
    values = [v[key] for _, v in runs]
    seed_means = [float(np.mean(stats.finite(v))) if len(stats.finite(v)) else None for v in values]
    used = [m for m in seed_means if m is not None]
    pooled = stats.finite(np.concatenate([np.ravel(v) for v in values]))
    std = None
    if spread == "seeds" and len(used) > 1:
        std = float(np.std(used, ddof=1))
    elif spread == "slices" and len(pooled) > 1:
        std = float(np.std(pooled, ddof=1))
    matrix, _ = stats.subject_matrix(values, subjects)
    return {"mean": float(np.mean(used)) if used else None, "std": std, "seed_means": seed_means,
            "ci95": stats.bootstrap_mean_ci(matrix) if used else None, "n": int(len(pooled)),
            "n_seeds": len(values)}


def _seed_averaged(matrix: np.ndarray) -> np.ndarray:
    counts = np.isfinite(matrix).sum(axis=0)
    sums = np.where(np.isfinite(matrix), matrix, 0.0).sum(axis=0)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def _comparison(key: str, a: str, b: str, matrices: Mapping[str, np.ndarray]) -> dict:
    result = stats.bootstrap_difference(matrices[a], matrices[b])
    test = stats.paired_wilcoxon(_seed_averaged(matrices[a]), _seed_averaged(matrices[b]))
    return {"metric": key, "a": a, "b": b, "diff": result["diff"], "ci95": result["ci95"],
            "significant": result["significant"], "n_subjects": int(matrices[a].shape[1]),
            "n_seeds_a": int(matrices[a].shape[0]), "n_seeds_b": int(matrices[b].shape[0]),
            "subject_p_value": test["p_value"], "subject_test_reason": test["reason"], "unit": "subject"}


def _notes(rows: Mapping[str, list], n_slices: int, n_subjects: int, seed_spread: bool) -> list[str]:
    trained = {name: len(runs) for name, runs in rows.items() if name in MODEL_NAMES.values()}
    seeds = ", ".join(f"{name} {count}" for name, count in trained.items())
    references = [name for name in rows if name not in trained]
    if seed_spread:
        notes = [f"Trained models: mean over training seeds ({seeds}) of the mean over the {n_slices} validation "
                 f"slices ({n_subjects} subjects) ± standard deviation across seeds (ddof 1) of those per-seed "
                 "means; bold = best trained model."]
        if references:
            notes.append(f"Reference rows ({', '.join(references)}) do not depend on training: mean over slices, "
                         "no spread.")
    else:
        notes = [f"Mean ± standard deviation over the {n_slices} validation slices ({n_subjects} subjects)"
                 + (f", one training seed per model ({seeds})" if trained else "") + "; bold = best trained model."]
    if trained:
        notes.append("Per-seed tables: seeds/*/table1.*; per-subject means and slice-level Wilcoxon tests: "
                     "details.md.")
    notes.append("Differences whose 95% interval contains 0 are reported as not significant.")
    return notes


def combine_seeds(task: str, per_seed: Mapping[str, Mapping[str, PerSlice]], reference: Mapping[str, PerSlice],
                  subjects: Sequence[str], columns: Sequence[str], conventions: Mapping | None = None,
                  slice_tests: Mapping[str, list] | None = None) -> dict:
    """The headline ``table1.json`` dictionary (see the module docstring)."""
    subjects = np.asarray(subjects).astype(str)
    rows = _row_runs(per_seed, reference)
    trained = [name for name in rows if name in MODEL_NAMES.values()]
    seed_spread = bool(trained) and all(len(rows[name]) >= 2 for name in trained)
    ids = sorted(set(subjects.tolist()))
    models, per_subject, comparisons = {}, {}, []
    matrices = {key: {name: stats.subject_matrix([v[key] for _, v in runs], subjects)[0]
                      for name, runs in rows.items()} for key in columns}
    for name, runs in rows.items():
        spread = ("seeds" if name in trained else "none") if seed_spread else "slices"
        models[name] = {key: _summary(runs, key, subjects, spread) for key in columns}
        averaged = {key: _seed_averaged(matrices[key][name]) for key in columns}
        per_subject[name] = {s: dict({"n_slices": int(np.sum(subjects == s))},
                                     **{k: (None if np.isnan(averaged[k][j]) else float(averaged[k][j]))
                                        for k in columns}) for j, s in enumerate(ids)}
    if TEST_REFERENCE in rows:
        comparisons = [_comparison(key, TEST_REFERENCE, name, matrices[key])
                       for name in rows if name != TEST_REFERENCE for key in columns]
    extra = dict(conventions or {})
    extra["headline"] = ("mean over seeds of the per-seed slice mean; std = spread named in notes; ci95 and "
                         "comparisons from a hierarchical percentile bootstrap "
                         f"({stats.BOOTSTRAP_RESAMPLES} resamples, seed {stats.BOOTSTRAP_SEED}): subjects resampled "
                         "jointly for paired rows, seeds resampled independently per row, every subject weighted "
                         "equally")
    return {"task": str(task), "split": "val", "n_slices": int(len(subjects)), "n_subjects": len(ids),
            "columns": list(columns), "metric_conventions": metric_conventions(columns, extra),
            "seeds": {name: [label for label, _ in runs] for name, runs in rows.items()},
            "spread": "seeds" if seed_spread else "slices", "notes": _notes(rows, len(subjects), len(ids), seed_spread),
            "models": models, "per_subject": per_subject, "comparisons": comparisons,
            "slice_tests": dict(slice_tests or {})}
