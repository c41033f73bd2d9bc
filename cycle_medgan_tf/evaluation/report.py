"""Table I results: statistics over per-slice metric values and the files table1.{md,csv,tex,json}.

``build_results`` turns per-slice metric values into the ``table1.json`` dictionary::

    {"task": str, "split": "val", "n_slices": int,
     "metric_conventions": {metric: {"display", "higher_is_better", "definition"}, ... plus evaluation settings},
     "models": {NAME: {metric: {"mean", "std", "ci95": [lo, hi], "n"}}},
     "per_subject": {NAME: {subject: {"n_slices", metric: mean, ...}}},
     "tests": [{"metric", "a", "b", "p_value", "mean_diff", "statistic", "n", "reason", "unit"}]}

Tests compare Cycle-MedGAN (``a``) with every other row (``b``) per metric on paired slices; ``mean_diff`` is
mean(a - b). Non-finite numbers are written as null. Every file is written atomically (temporary name, rename).
"""

from __future__ import annotations

import json
import math
import os
from typing import Mapping, Sequence

import numpy as np

from cycle_medgan_tf.atomic import atomic_write_text
from cycle_medgan_tf.evaluation import stats
from cycle_medgan_tf.evaluation.metrics import METRICS
from cycle_medgan_tf.evaluation.table import MODEL_NAMES, render_csv, render_latex, render_markdown

TABLE_FILES = ("table1.md", "table1.csv", "table1.tex", "table1.json")
FIGURE_FILE = "fig3.png"
OUTPUT_FILES = TABLE_FILES + (FIGURE_FILE,)
TEST_REFERENCE = MODEL_NAMES["cycle_medgan"]


def metric_conventions(extra: Mapping | None = None) -> dict:
    """Definitions of the four metrics (and any evaluation settings in ``extra``) for ``table1.json``."""
    conventions = {m.key: {"display": m.display, "higher_is_better": m.higher_is_better, "definition": m.convention}
                   for m in METRICS}
    conventions.update({
        "statistics": (f"mean and sample std (ddof 1) over slices; ci95 = percentile bootstrap of the mean "
                       f"({stats.BOOTSTRAP_RESAMPLES} resamples, seed {stats.BOOTSTRAP_SEED}); non-finite values "
                       "(PSNR of an exact copy) are left out; n = number of values used"),
        "tests": (f"two-sided Wilcoxon signed-rank test on paired slices, {TEST_REFERENCE} (a) against each other "
                  "row (b); mean_diff = mean(a - b); slices of one subject are not independent, so read "
                  "per-subject means alongside"),
    })
    conventions.update(extra or {})
    return conventions


def build_results(task: str, per_slice: Mapping[str, Mapping[str, np.ndarray]], subjects: Sequence[str],
                  conventions: Mapping | None = None) -> dict:
    """The ``table1.json`` dictionary from per-slice values ``{row name: {metric: (N,) array}}``."""
    subjects = np.asarray(subjects).astype(str)
    n = len(subjects)
    for name, values in per_slice.items():
        for metric in METRICS:
            if len(np.asarray(values[metric.key]).ravel()) != n:
                raise ValueError(f"{name}: {metric.key} has {len(values[metric.key])} values for {n} slices")
    models = {name: {m.key: stats.summarize(values[m.key]) for m in METRICS} for name, values in per_slice.items()}
    per_subject = {}
    for name, values in per_slice.items():
        means = {m.key: stats.per_subject_means(values[m.key], subjects) for m in METRICS}
        per_subject[name] = {s: dict({"n_slices": int(np.sum(subjects == s))}, **{k: means[k][s] for k in means})
                             for s in sorted(set(subjects.tolist()))}
    return {"task": str(task), "split": "val", "n_slices": int(n),
            "metric_conventions": metric_conventions(conventions), "models": models, "per_subject": per_subject,
            "tests": paired_tests(per_slice)}


def paired_tests(per_slice: Mapping[str, Mapping[str, np.ndarray]]) -> list[dict]:
    """Wilcoxon tests of Cycle-MedGAN against every other row, per metric (empty without Cycle-MedGAN)."""
    if TEST_REFERENCE not in per_slice:
        return []
    tests = []
    for name in per_slice:
        if name == TEST_REFERENCE:
            continue
        for metric in METRICS:
            result = stats.paired_wilcoxon(per_slice[TEST_REFERENCE][metric.key], per_slice[name][metric.key])
            tests.append({"metric": metric.key, "a": TEST_REFERENCE, "b": name, "p_value": result["p_value"],
                          "mean_diff": result["mean_diff"], "statistic": result["statistic"], "n": result["n"],
                          "reason": result["reason"], "unit": "slice"})
    return tests


def _json_safe(value):
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def write_tables(out_dir, results: Mapping) -> list[str]:
    """Write table1.md/.csv/.tex/.json for one task into ``out_dir`` and return their paths."""
    os.makedirs(out_dir, exist_ok=True)
    safe = _json_safe(results)
    contents = {
        "table1.md": render_markdown([safe]),
        "table1.csv": render_csv([safe]),
        "table1.tex": render_latex([safe]),
        "table1.json": json.dumps(safe, indent=2, allow_nan=False) + "\n",
    }
    paths = []
    for name in TABLE_FILES:
        path = os.path.join(out_dir, name)
        atomic_write_text(path, contents[name])
        paths.append(path)
    return paths


def load_results(path) -> dict:
    """Read a ``table1.json`` written by :func:`write_tables`."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)
