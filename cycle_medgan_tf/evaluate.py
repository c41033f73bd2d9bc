"""Evaluate trained translators on the paired validation set: Table I (SSIM, PSNR, LPIPS, VIF, then the
tissue-aware metrics of ``evaluation/tissue.py``) and Fig. 3, over one or several training seeds.

    python -m cycle_medgan_tf.evaluate --data=STORE.h5 \
        --runs=unit=RUN1,cyclegan=RUN2a+RUN2b,cycle_medgan=RUN3a+RUN3b --out=DIR \
        [--direction=a2b|b2a] [--max_slices=N] [--identity] [--lookup] [--degrade=blur,noise,blur+noise] \
        [--batch_size=16] [--overwrite]

For a2b the input is val/A and the target val/B (b2a swaps them), both mapped to [-1, 1] through the store's
windows. Every run's exported model (``RUN/export``) must come from the same task, domains, windows and image
size as the store. Several run directories of one model (one per training seed) are joined by ``+``; the k-th
run of every model forms one per-seed table in ``DIR/seeds/seed_S/`` (S from the runs' config.json, else
``replicate_k``), and ``DIR`` gets the headline table (mean over seeds, spread across seeds, subject-level
comparisons with hierarchical-bootstrap intervals; see ``evaluation/combine.py``) and ``details.md``
(per-subject means, slice-level Wilcoxon tests). Writes table1.md/.csv/.tex/.json and fig3.png and prints the
headline table. ``--identity`` adds a row whose prediction is the input itself; ``--lookup`` the input-blind
"Look-up (best training slice)" row (``evaluation/lookup.py``); ``--degrade`` adds rows whose
prediction is the *target* degraded synthetically (Gaussian blur of sigma ``BLUR_SIGMA_PX`` pixels, Gaussian noise
of standard deviation ``NOISE_STD`` in model range [-1, 1] with seed ``DEGRADE_SEED``, clipped to [-1, 1], or
both: blur then the same noise), which checks the metrics end to end without any training.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from cycle_medgan_tf.atomic import atomic_path, atomic_write_text
from cycle_medgan_tf.data.store import StoreError, from_model_range, open_store, to_model_range
from cycle_medgan_tf.data.window import linear_model_range
from cycle_medgan_tf.data.validate import validate_store
from cycle_medgan_tf.evaluation import report
from cycle_medgan_tf.evaluation.combine import combine_seeds
from cycle_medgan_tf.evaluation.details import render_details
from cycle_medgan_tf.evaluation.lookup import LOOKUP_CONVENTION, LOOKUP_ROW, lookup_prediction
from cycle_medgan_tf.evaluation.metrics import compute_metrics
from cycle_medgan_tf.evaluation.runs import (EvaluationError, check_run, normalise_runs, parse_runs,
                                             replicate_labels, translate)
from cycle_medgan_tf.evaluation.table import MODEL_NAMES
from cycle_medgan_tf.evaluation.tissue import tissue_metrics

__all__ = ["EvaluationError", "evaluate", "parse_runs", "degrade_target", "validation_metrics"]

DIRECTIONS = ("a2b", "b2a")
IDENTITY_ROW = "Identity"
BLUR_SIGMA_PX = 1.5
NOISE_STD = 0.1
DEGRADE_SEED = 1234
DEGRADATIONS = {"blur": "Target+blur", "noise": "Target+noise", "blur+noise": "Target+blur+noise"}

def degrade_target(target: np.ndarray, kind: str, blur_sigma: float = BLUR_SIGMA_PX, noise_std: float = NOISE_STD,
                   seed: int = DEGRADE_SEED) -> np.ndarray:
    """The target (N, H, W) in [-1, 1] degraded by "blur", "noise" or "blur+noise" (deterministic)."""
    from scipy.ndimage import gaussian_filter

    if kind not in DEGRADATIONS:
        raise EvaluationError(f"unknown degradation {kind!r} (expected one of {', '.join(DEGRADATIONS)})")
    out = np.asarray(target, dtype=np.float64)
    if "blur" in kind:
        out = gaussian_filter(out, sigma=(0.0, blur_sigma, blur_sigma), mode="reflect")
    if "noise" in kind:
        out = out + np.random.default_rng(seed).normal(0.0, noise_std, size=out.shape)
    return np.clip(out, -1.0, 1.0).astype(np.float32)


@dataclass
class ValidationData:
    """The paired validation set of one direction (model range) and what the reference rows need."""

    task: str
    source: str
    dest: str
    source_window: tuple
    target_window: tuple
    inputs: np.ndarray
    target: np.ndarray
    subjects: np.ndarray
    training_targets: np.ndarray | None      # train/B for a2b, train/A for b2a (only for the look-up row)


def _check_arguments(runs, direction, degrade, max_slices, batch_size, fig_rows, identity, lookup) -> None:
    if direction not in DIRECTIONS:
        raise EvaluationError(f"--direction must be a2b or b2a, got {direction!r}")
    bad = [kind for kind in degrade if kind not in DEGRADATIONS]
    if bad:
        raise EvaluationError(f"unknown degradation {bad[0]!r} (expected any of {', '.join(DEGRADATIONS)})")
    if max_slices is not None and max_slices < 1:
        raise EvaluationError(f"--max_slices must be at least 1, got {max_slices}")
    if batch_size < 1:
        raise EvaluationError(f"--batch_size must be at least 1, got {batch_size}")
    if fig_rows < 1:
        raise EvaluationError(f"--fig_rows must be at least 1, got {fig_rows}")
    if not (runs or identity or lookup or degrade):
        raise EvaluationError("nothing to evaluate: give --runs, --identity, --lookup or --degrade")


def _our_files_only(folder: str) -> bool:
    return all(name in report.OUTPUT_FILES for name in os.listdir(folder))


def _check_outputs(out: str, overwrite: bool) -> None:
    """Refuse to replace earlier results (headline files or per-seed folders) without ``overwrite``."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise EvaluationError(f"--out {out} exists and is not a directory")
    existing = [name for name in report.OUTPUT_FILES if os.path.exists(os.path.join(out, name))]
    seeds_dir = os.path.join(out, report.SEEDS_DIR)
    if os.path.isdir(seeds_dir) and os.listdir(seeds_dir):
        existing.append(report.SEEDS_DIR)
    if existing and not overwrite:
        raise EvaluationError(f"{os.path.join(out, existing[0])} already exists (use --overwrite to replace it)")


def _slice_indices(n: int, max_slices: int | None) -> np.ndarray:
    if max_slices is None or max_slices >= n:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_slices).round().astype(int))


def _read_rows(dataset, keep: np.ndarray) -> np.ndarray:
    """Rows ``keep`` (sorted, unique) of an HDF5 dataset; one contiguous read when all rows are wanted."""
    return dataset[()] if len(keep) == dataset.shape[0] else dataset[keep]


def read_validation(data: str, runs, direction: str, max_slices, lookup: bool) -> ValidationData:
    """The validated store's paired validation set of ``direction`` (model range), after checking every run's
    export against it (``EvaluationError`` names the problem)."""
    problems = validate_store(data)
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise EvaluationError(f"{data} is not a valid slice store: {problems[0]}{more}")
    src, dst = ("A", "B") if direction == "a2b" else ("B", "A")
    try:
        with open_store(data, validate=False) as store:
            for name, dirs in runs.items():
                for run_dir in dirs:
                    check_run(name, run_dir, direction, store)
            keep = _slice_indices(len(store.val_images(src)), max_slices)
            return ValidationData(
                task=store.task, source=store.domain_name(src), dest=store.domain_name(dst),
                source_window=store.window(src), target_window=store.window(dst),
                inputs=to_model_range(_read_rows(store.val_images(src), keep), store.window(src)),
                target=to_model_range(_read_rows(store.val_images(dst), keep), store.window(dst)),
                subjects=store.val_subjects()[keep].astype(str),
                training_targets=(to_model_range(store.train_images(dst)[()], store.window(dst)) if lookup
                                  else None))
    except (StoreError, OSError) as exc:
        raise EvaluationError(f"cannot read {data}: {exc}") from exc


def row_metrics(target: np.ndarray, prediction: np.ndarray, domain: str, window,
                batch_size: int = 16) -> dict[str, np.ndarray]:
    """Per-slice Table I metrics (model range of the linear window, whatever the transfer) and tissue-aware ones
    (physical units) of (N, H, W) predictions against their targets, both in the store's model range."""
    values = compute_metrics(linear_model_range(target, window), linear_model_range(prediction, window),
                             batch_size=batch_size)
    values.update(tissue_metrics(from_model_range(target, window), from_model_range(prediction, window), domain,
                                 window))
    return values


def _row_metrics(val: ValidationData, prediction: np.ndarray, batch_size: int) -> dict[str, np.ndarray]:
    return row_metrics(val.target, prediction, val.dest, val.target_window, batch_size)


def _reference_predictions(val: ValidationData, identity: bool, lookup: bool, degrade) -> dict[str, np.ndarray]:
    predictions = {}
    if identity:
        predictions[IDENTITY_ROW] = val.inputs
    if lookup:
        predictions[LOOKUP_ROW] = lookup_prediction(val.target, val.training_targets)
    for kind in DEGRADATIONS:
        if kind in degrade:
            predictions[DEGRADATIONS[kind]] = degrade_target(val.target, kind)
    return predictions


def _conventions(val: ValidationData, direction: str, max_slices, identity: bool, lookup: bool, degrade,
                 runs: Mapping) -> dict:
    src, dst = ("A", "B") if direction == "a2b" else ("B", "A")
    return {"evaluation": {
        "direction": direction, "input": f"val/{src} ({val.source})",
        "reference": f"val/{dst} ({val.dest}), the target",
        "window_input": list(val.source_window), "window_target": list(val.target_window),
        **{f"transfer_{k}": w.record()["transfer"] for k, w in (("input", val.source_window),
                                                               ("target", val.target_window)) if not w.linear},
        "slices": "all" if max_slices is None else f"at most {max_slices}, evenly spaced",
        "identity": "prediction = input image" if identity else None,
        "lookup": LOOKUP_CONVENTION + f" (train/{dst})" if lookup else None,
        "degradations": {DEGRADATIONS[k]: _degradation_text(k) for k in DEGRADATIONS if k in degrade},
        "runs": dict(runs),
    }}


def evaluate(data, runs: Mapping[str, str | Sequence[str]], out, *, direction: str = "a2b",
             max_slices: int | None = None, identity: bool = False, lookup: bool = False,
             degrade: Sequence[str] = (), batch_size: int = 16, fig_rows: int = 6, overwrite: bool = False) -> dict:
    """Evaluate runs (``{"unit"|"cyclegan"|"cycle_medgan": RUN_DIR or [RUN_DIR per seed]}``) on the store's
    paired validation set.

    Writes the per-seed tables into ``out/seeds/*/``, the headline table1.{md,csv,tex,json}, details.md and
    fig3.png into ``out``, and returns the headline ``table1.json`` dictionary. Raises :class:`EvaluationError`
    with a one-line message for any problem with the inputs.
    """
    from cycle_medgan_tf.evaluation.lpips import LPIPSWeightsError, load_weights

    data, out = os.fspath(data), os.fspath(out)
    runs = normalise_runs(runs)
    _check_arguments(runs, direction, degrade, max_slices, batch_size, fig_rows, identity, lookup)
    _check_outputs(out, overwrite)
    try:
        load_weights()
    except LPIPSWeightsError as exc:
        raise EvaluationError(str(exc)) from exc
    val = read_validation(data, runs, direction, max_slices, lookup)
    columns = report.table_keys(val.dest)
    conventions = _conventions(val, direction, max_slices, identity, lookup, degrade, runs)
    references = _reference_predictions(val, identity, lookup, degrade)
    reference_metrics = {row: _row_metrics(val, p, batch_size) for row, p in references.items()}

    per_seed, slice_tests = _evaluate_seeds(val, runs, out, columns, conventions, references, reference_metrics,
                                            direction, batch_size, fig_rows)
    if not per_seed:
        _write_figure(out, val, references, reference_metrics, fig_rows, "")
    headline = combine_seeds(val.task, per_seed, reference_metrics, val.subjects, columns, conventions, slice_tests)
    report.write_tables(out, headline)
    results = report.load_results(os.path.join(out, "table1.json"))
    atomic_write_text(os.path.join(out, report.DETAILS_FILE), render_details(results))
    return results


def validation_metrics(data, runs: Mapping[str, str], *, direction: str = "a2b", identity: bool = False,
                       batch_size: int = 16) -> dict:
    """Per-slice metrics of runs (``{row name: RUN_DIR}``, the row name a model such as ``"cyclegan"``) on the
    store's paired validation set, without writing any file: ``{"subjects": [id per slice], "columns": [metric
    keys], "rows": {row: {metric: (N,) array}}}``; ``identity`` adds the Identity row."""
    from cycle_medgan_tf.evaluation.lpips import LPIPSWeightsError, load_weights

    runs = normalise_runs(runs)
    _check_arguments(runs, direction, (), None, batch_size, 1, identity, False)
    try:
        load_weights()
    except LPIPSWeightsError as exc:
        raise EvaluationError(str(exc)) from exc
    val = read_validation(os.fspath(data), runs, direction, None, False)
    rows = {name: _row_metrics(val, translate(name, dirs[0], direction, val.inputs, batch_size), batch_size)
            for name, dirs in runs.items()}
    if identity:
        rows[IDENTITY_ROW] = _row_metrics(val, val.inputs, batch_size)
    return {"subjects": [str(s) for s in val.subjects], "columns": report.table_keys(val.dest), "rows": rows}


def _evaluate_seeds(val: ValidationData, runs: Mapping[str, list[str]], out: str, columns, conventions,
                    references, reference_metrics, direction: str, batch_size: int, fig_rows: int):
    """One table (and Fig. 3) per replicate in ``out/seeds/LABEL/``; returns per-slice values and slice tests."""
    per_seed, slice_tests = {}, {}
    labels = replicate_labels(runs)
    for k, label in enumerate(labels):
        predictions = {MODEL_NAMES[m]: translate(m, dirs[k], direction, val.inputs, batch_size)
                       for m, dirs in runs.items() if len(dirs) > k}
        per_seed[label] = {row: _row_metrics(val, p, batch_size) for row, p in predictions.items()}
        seed_dir = os.path.join(out, report.SEEDS_DIR, label)
        seed_runs = {m: dirs[k] for m, dirs in runs.items() if len(dirs) > k}
        seed_conventions = {"evaluation": dict(conventions["evaluation"], runs=seed_runs, seed=label)}
        per_slice = {**per_seed[label], **reference_metrics}
        result = report.build_results(val.task, per_slice, val.subjects, seed_conventions, columns)
        report.write_tables(seed_dir, result)
        slice_tests[label] = result["tests"]
        _write_figure(seed_dir, val, {**predictions, **references}, per_slice, fig_rows, f" ({label})")
        if k == 0:
            _copy_file(os.path.join(seed_dir, report.FIGURE_FILE), os.path.join(out, report.FIGURE_FILE))
    _remove_stale_seed_folders(out, labels)
    return per_seed, slice_tests


def _copy_file(src: str, dst: str) -> None:
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


def _remove_stale_seed_folders(out: str, labels: Sequence[str]) -> None:
    """Per-seed folders of an earlier evaluation with other seeds (holding only our files) are removed."""
    seeds_dir = os.path.join(out, report.SEEDS_DIR)
    if not os.path.isdir(seeds_dir):
        return
    for name in os.listdir(seeds_dir):
        folder = os.path.join(seeds_dir, name)
        if name not in labels and os.path.isdir(folder) and _our_files_only(folder):
            shutil.rmtree(folder)


def _degradation_text(kind: str) -> str:
    parts = []
    if "blur" in kind:
        parts.append(f"Gaussian blur sigma {BLUR_SIGMA_PX} px")
    if "noise" in kind:
        parts.append(f"Gaussian noise std {NOISE_STD} in [-1, 1] (seed {DEGRADE_SEED})")
    return "target + " + " then ".join(parts) + ", clipped to [-1, 1]"


def _write_figure(out: str, val: ValidationData, predictions: Mapping[str, np.ndarray],
                  per_slice: Mapping[str, Mapping[str, np.ndarray]], fig_rows: int, suffix: str) -> None:
    from cycle_medgan_tf.evaluation.figure import render_fig3

    columns = {name: images for name, images in predictions.items() if name != IDENTITY_ROW}
    title = f"{val.task}: {val.source} -> {val.dest} (validation, {len(val.subjects)} slices){suffix}"
    os.makedirs(out, exist_ok=True)
    render_fig3(os.path.join(out, report.FIGURE_FILE), inputs=val.inputs, target=val.target, predictions=columns,
                per_slice=per_slice, subjects=val.subjects, source_domain=val.source, target_domain=val.dest,
                source_window=val.source_window, target_window=val.target_window, max_rows=fig_rows, title=title,
                input_metrics=IDENTITY_ROW if IDENTITY_ROW in per_slice else None)


if __name__ == "__main__":       # the command: cycle_medgan_tf/commands/evaluate.py
    from cycle_medgan_tf.commands.evaluate import run
    run()
