"""Table I results: statistics over per-slice metric values and the files table1.{md,csv,tex,json}.

``build_results`` turns the per-slice metric values of one training seed into the ``table1.json`` dictionary
(the headline table over several seeds is built by ``evaluation/combine.py``)::

    {"task": str, "split": "val", "n_slices": int, "columns": [metric keys in display order],
     "metric_conventions": {metric: {"display", "higher_is_better", "better", "definition"}, ... plus settings},
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
from cycle_medgan_tf.evaluation.metrics import METRIC_BY_KEY, METRICS
from cycle_medgan_tf.evaluation.table import (MODEL_NAMES, render_comparisons, render_csv, render_latex,
                                              render_markdown, render_notes)
from cycle_medgan_tf.evaluation.tissue import MASK_CONVENTION, TISSUE_METRIC_BY_KEY, metrics_for

TABLE_FILES = ("table1.md", "table1.csv", "table1.tex", "table1.json")
FIGURE_FILE = "fig3.png"
DETAILS_FILE = "details.md"
OUTPUT_FILES = TABLE_FILES + (FIGURE_FILE, DETAILS_FILE)
SEEDS_DIR = "seeds"
TEST_REFERENCE = MODEL_NAMES["cycle_medgan"]


def metric_conventions(columns: Sequence[str] | None = None, extra: Mapping | None = None) -> dict:
    """Definitions of the table's metrics (and any evaluation settings in ``extra``) for ``table1.json``."""
    keys = list(columns or [m.key for m in METRICS])
    conventions = {}
    for key in keys:
        if key in METRIC_BY_KEY:
            m = METRIC_BY_KEY[key]
            conventions[key] = {"display": m.display, "higher_is_better": m.higher_is_better,
                                "better": "higher" if m.higher_is_better else "lower", "definition": m.convention}
        else:
            t = TISSUE_METRIC_BY_KEY[key]
            higher = {"higher": True, "lower": False}.get(t.better)
            conventions[key] = {"display": t.display, "higher_is_better": higher,
                                "better": t.better, "definition": t.convention}
    if any(key in TISSUE_METRIC_BY_KEY for key in keys):
        conventions["head_mask"] = MASK_CONVENTION
    conventions.update({
        "statistics": (f"mean and sample std (ddof 1) over slices; ci95 = percentile bootstrap of the mean "
                       f"({stats.BOOTSTRAP_RESAMPLES} resamples, seed {stats.BOOTSTRAP_SEED}); non-finite values "
                       "(PSNR of an exact copy, Dice without bone) are left out; n = number of values used"),
        "tests": (f"two-sided Wilcoxon signed-rank test on paired slices, {TEST_REFERENCE} (a) against each other "
                  "row (b); mean_diff = mean(a - b); slices of one subject are not independent, so this is a "
                  "detail: the headline table's comparisons are subject-level"),
    })
    conventions.update(extra or {})
    return conventions


def table_keys(domain: str) -> list[str]:
    """The metric keys of a table whose target domain is ``domain``: the paper's four, then the tissue ones."""
    return [m.key for m in METRICS] + [t.key for t in metrics_for(domain)]


def build_results(task: str, per_slice: Mapping[str, Mapping[str, np.ndarray]], subjects: Sequence[str],
                  conventions: Mapping | None = None, columns: Sequence[str] | None = None) -> dict:
    """The ``table1.json`` dictionary of one seed from per-slice values ``{row name: {metric: (N,) array}}``."""
    keys = list(columns or [m.key for m in METRICS])
    subjects = np.asarray(subjects).astype(str)
    n = len(subjects)
    for name, values in per_slice.items():
        for key in keys:
            if len(np.asarray(values[key]).ravel()) != n:
                raise ValueError(f"{name}: {key} has {len(values[key])} values for {n} slices")
    models = {name: {k: stats.summarize(values[k]) for k in keys} for name, values in per_slice.items()}
    per_subject = {}
    for name, values in per_slice.items():
        means = {k: stats.per_subject_means(values[k], subjects) for k in keys}
        per_subject[name] = {s: dict({"n_slices": int(np.sum(subjects == s))}, **{k: means[k][s] for k in means})
                             for s in sorted(set(subjects.tolist()))}
    return {"task": str(task), "split": "val", "n_slices": int(n), "columns": keys,
            "metric_conventions": metric_conventions(keys, conventions), "models": models,
            "per_subject": per_subject, "tests": paired_tests(per_slice, keys)}


def paired_tests(per_slice: Mapping[str, Mapping[str, np.ndarray]], keys: Sequence[str] | None = None) -> list[dict]:
    """Slice-level Wilcoxon tests of Cycle-MedGAN against every other row, per metric (empty without it)."""
    if TEST_REFERENCE not in per_slice:
        return []
    tests = []
    for name in per_slice:
        if name == TEST_REFERENCE:
            continue
        for key in keys or [m.key for m in METRICS]:
            result = stats.paired_wilcoxon(per_slice[TEST_REFERENCE][key], per_slice[name][key])
            tests.append({"metric": key, "a": TEST_REFERENCE, "b": name, "p_value": result["p_value"],
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


def markdown_document(result: Mapping) -> str:
    """table1.md: the table, then (for a headline table) the notes and the subject-level comparisons."""
    parts = [render_markdown([result])]
    if "spread" in result:
        parts.append(render_notes(result))
    if result.get("comparisons"):
        parts.append(render_comparisons(result))
    return "\n\n".join(part.rstrip("\n") for part in parts) + "\n"


def write_tables(out_dir, results: Mapping) -> list[str]:
    """Write table1.md/.csv/.tex/.json for one task into ``out_dir`` and return their paths."""
    os.makedirs(out_dir, exist_ok=True)
    safe = _json_safe(results)
    contents = {
        "table1.md": markdown_document(safe),
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
