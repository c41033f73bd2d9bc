"""Learning curves during training: every ``curve_every`` steps and at the last step, the current generators translate
a fixed subset of a *tuning store*'s paired validation rows in both directions, and the subset's mean SSIM and PSNR
go to ``metrics.jsonl`` (records with ``"kind": "curve"``) and TensorBoard (``curves/...``), written by
``training/hooks.CurvePoints``.

The tuning store is the same data generator as the training store with other subjects (e.g. ``make_default`` with
another ``--seed``); it is never the store Table I reports on: the same file, or any subject id shared with the
training store, is refused, as are another task, other domains, windows or image size.

Evaluation does not change training: the translators are the inference models of the export (UNIT: the latent mean),
called with ``training=False``; nothing random is drawn and no variable is written. Only the chief evaluates and
writes. A resumed run neither repeats nor loses points: the records of steps after the restored checkpoint are
trimmed with the loss records, and a point is written before the checkpoint of its step.

Metrics are per-slice functions ``(target, prediction, domain, window) -> {name: per-slice values}`` on (N, H, W)
images in model range [-1, 1] (``domain`` is the target domain's name, ``window`` its (lo, hi) intensity window);
the record holds each one's mean over the subset (NaN slices left out) as ``{direction}_{name}``. Adding a metric is
one entry in :data:`CURVE_METRICS`.
"""

from __future__ import annotations

import math
import os
import time

import numpy as np
import tensorflow as tf

from cycle_medgan_tf.config import CURVE_POINTS, TrainConfig
from cycle_medgan_tf.data.store import StoreError, open_store
from cycle_medgan_tf.data.window import as_window, linear_model_range
from cycle_medgan_tf.evaluation.curves import CURVE_RECORD_KIND
from cycle_medgan_tf.evaluation.metrics import psnr, ssim

DIRECTIONS = {"a2b": ("A", "B"), "b2a": ("B", "A")}     # direction -> (source domain, target domain)
EVAL_BATCH = 16                                          # slices per translator call
MAX_NAMED_SUBJECTS = 3                                   # shared subject ids named in a refusal


def image_metrics(target: np.ndarray, prediction: np.ndarray, domain: str, window) -> dict[str, np.ndarray]:
    """The paper's SSIM and PSNR per slice (whole image, on the linear window; see evaluation/metrics.py)."""
    target, prediction = linear_model_range(target, window), linear_model_range(prediction, window)
    return {"ssim": ssim(target, prediction), "psnr": psnr(target, prediction)}


def head_metrics(target: np.ndarray, prediction: np.ndarray, domain: str, window) -> dict[str, np.ndarray]:
    """The tissue-aware metrics of evaluation/tissue.py (CT: brain- and bone-window SSIM/PSNR, MAE; MR/PET: masked
    SSIM/PSNR), on the images mapped back to physical units through the target domain's window."""
    from cycle_medgan_tf.data.store import from_model_range
    from cycle_medgan_tf.evaluation.tissue import tissue_metrics

    values = tissue_metrics(from_model_range(target, window), from_model_range(prediction, window), domain, window)
    return {key: value for key, value in values.items() if key in CURVE_TISSUE_KEYS}


CURVE_TISSUE_KEYS = ("mae_hu", "ssim_brain", "psnr_brain", "ssim_bone", "ssim_mask", "psnr_mask")
CURVE_METRICS = (image_metrics, head_metrics)


class CurveStoreError(ValueError):
    """A tuning store that cannot be used for learning curves; the message is one line for the user."""


def _subject_splits(store) -> dict[str, set]:
    return {"train A": set(store.train_subjects("A")), "train B": set(store.train_subjects("B")),
            "val": set(store.val_subjects())}


def _mismatches(curve, train) -> list[str]:
    """How the tuning store differs from the training store in task, domains, windows or image size."""
    problems = []
    if curve.task != train.task:
        problems.append(f"task {curve.task!r}, not {train.task!r}")
    if (curve.domain_a, curve.domain_b) != (train.domain_a, train.domain_b):
        problems.append(f"domains {curve.domain_a}->{curve.domain_b}, not {train.domain_a}->{train.domain_b}")
    for name in ("window_a", "window_b"):
        if not as_window(getattr(curve, name)).same_as(getattr(train, name)):
            problems.append(f"{name} {getattr(curve, name)!r}, not {getattr(train, name)!r}")
    if curve.image_size != train.image_size:
        problems.append(f"image size {curve.image_size}, not {train.image_size}")
    return problems


def _shared_subjects(curve, train) -> str | None:
    """A description of the subject ids the two stores share, or ``None``."""
    curve_splits, train_splits = _subject_splits(curve), _subject_splits(train)
    shared = sorted(set().union(*curve_splits.values()) & set().union(*train_splits.values()))
    if not shared:
        return None
    first = shared[0]
    where = (f"in its {', '.join(k for k, v in curve_splits.items() if first in v)} and the training store's "
             f"{', '.join(k for k, v in train_splits.items() if first in v)}")
    more = f" and {len(shared) - 1} more" if len(shared) > 1 else ""
    return f"{', '.join(shared[:MAX_NAMED_SUBJECTS])}{more} ({first} {where})"


def check_curve_store(curve_path: str, train_path: str) -> None:
    """Refuse (:class:`CurveStoreError`) a tuning store that is the training store, shares a subject with it, or
    differs from it in task, domains, windows or image size."""
    if not os.path.isfile(curve_path):
        raise CurveStoreError(f"--curve_data {curve_path}: file not found")
    if os.path.exists(train_path) and os.path.samefile(curve_path, train_path):
        raise CurveStoreError(f"--curve_data {curve_path} is the training store itself; learning curves need a tuning "
                              "store of other subjects (e.g. make_default with another --seed), never the store "
                              "Table I reports on")
    try:    # the training store was checked by the run's entry point; the tuning store is checked here, once
        with open_store(curve_path) as curve, open_store(train_path, validate=False) as train:
            problems, shared = _mismatches(curve, train), _shared_subjects(curve, train)
    except StoreError as exc:
        raise CurveStoreError(f"--curve_data: {' '.join(str(exc).split())}") from None
    if problems:
        raise CurveStoreError(f"--curve_data {curve_path} does not match the training store {train_path}: it has "
                              + "; ".join(problems))
    if shared:
        raise CurveStoreError(f"--curve_data {curve_path} shares subject(s) {shared} with the training store "
                              f"{train_path}; a tuning store must come from other subjects")


def curve_rows(subjects, count: int) -> np.ndarray:
    """``count`` row indices spread over the subjects: quotas dealt round-robin over the sorted subject ids (as even
    as their slice counts allow), each subject's rows taken evenly spaced and centred. All rows if there are fewer."""
    subjects = np.asarray(subjects).astype(str)
    if count >= len(subjects):
        return np.arange(len(subjects))
    rows_of = {s: np.flatnonzero(subjects == s) for s in sorted(set(subjects))}
    quota = dict.fromkeys(rows_of, 0)
    remaining = count
    while remaining:
        for s, rows in rows_of.items():
            if remaining and quota[s] < len(rows):
                quota[s] += 1
                remaining -= 1
    picked = [rows[((np.arange(q) + 0.5) * len(rows) / q).astype(int)] for s, rows in rows_of.items()
              if (q := quota[s])]
    return np.sort(np.concatenate(picked))


class CurveSubset:
    """The fixed tuning subset in model range: ``images[domain]`` (N, S, S, 1) float32, with subjects, rows,
    domain names and windows."""

    def __init__(self, path: str, count: int, image_size: int):
        from cycle_medgan_tf.data.pipeline import val_arrays

        a, b, subjects = val_arrays(path, image_size)
        self.rows = curve_rows(subjects, count)
        self.images = {"A": a[self.rows], "B": b[self.rows]}
        self.subjects = subjects[self.rows]
        with open_store(path, validate=False) as store:
            self.domains = {"A": store.domain_a, "B": store.domain_b}
            self.windows = {"A": store.window_a, "B": store.window_b}

    def scores(self, translate) -> dict[str, float]:
        """``{direction}_{metric}``: the subset's mean of every :data:`CURVE_METRICS` value, per direction;
        ``translate(direction, x)`` maps a batch (n, S, S, 1) of the source domain to the target domain."""
        out = {}
        for direction, (source, target) in DIRECTIONS.items():
            inputs = self.images[source]
            prediction = np.concatenate([np.asarray(translate(direction, inputs[i:i + EVAL_BATCH]), dtype=np.float32)
                                         for i in range(0, len(inputs), EVAL_BATCH)])
            for metric in CURVE_METRICS:
                per_slice = metric(self.images[target][..., 0], prediction[..., 0], self.domains[target],
                                   self.windows[target])
                for name, values in per_slice.items():
                    out[f"{direction}_{name}"] = _finite_or_none(_mean_of_finite(values))
        return out


def _mean_of_finite(values) -> float:
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    return float(values.mean()) if len(values) else math.nan


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def identity_scores(curve_path: str, count: int, image_size: int) -> dict[str, float]:
    """The curve scores of the input copied as the prediction on the same subset (a reference line for
    ``render_curves``)."""
    return CurveSubset(curve_path, count, image_size).scores(lambda direction, x: x)


def curve_interval(curve_every: int, total_steps: int) -> int:
    """Steps between curve points: ``curve_every``, or with 0 about ``CURVE_POINTS`` points over the run."""
    return curve_every or max(1, math.ceil(total_steps / CURVE_POINTS))


def curve_steps(curve_every: int, total_steps: int) -> list[int]:
    """The steps with a curve point: every :func:`curve_interval` steps and the last step."""
    every = curve_interval(curve_every, total_steps)
    return sorted(set(range(every, total_steps + 1, every)) | {total_steps})


class LearningCurves:
    """Evaluates and logs the curve points of one run (the chief's)."""

    def __init__(self, cfg: TrainConfig, total_steps: int):
        self.every = curve_interval(cfg.curve_every, total_steps)
        self.steps = frozenset(curve_steps(cfg.curve_every, total_steps))
        self.subset = CurveSubset(cfg.curve_data, cfg.curve_slices, cfg.image_size)
        self._compiled: dict = {}

    def describe(self) -> str:
        return (f"learning curves every {self.every} steps on {len(self.subset.rows)} validation slices of "
                f"{len(set(self.subset.subjects))} subjects of the tuning store")

    def due(self, step: int) -> bool:
        return step in self.steps

    def _translate(self, translators: dict, direction: str, x: np.ndarray):
        """``translators[direction]`` in inference mode, as a graph function traced once per model (faster than eager
        calls)."""
        model = translators[direction]
        key = (direction, id(model))
        if key not in self._compiled:
            self._compiled[key] = tf.function(lambda images: model(images, training=False), reduce_retracing=True)
        return self._compiled[key](x)

    def record(self, step: int, translators: dict) -> dict:
        """The curve record of ``step`` for ``translators`` (``{"a2b": model, "b2a": model}``)."""
        t = time.monotonic()
        scores = self.subset.scores(lambda direction, x: self._translate(translators, direction, x))
        return dict(kind=CURVE_RECORD_KIND, step=int(step), slices=len(self.subset.rows), **scores,
                    eval_s=round(time.monotonic() - t, 3))


def learning_curves(cfg: TrainConfig, total_steps: int, chief: bool) -> LearningCurves | None:
    """The run's :class:`LearningCurves` (``None`` when ``cfg.curve_data`` is empty, or on a non-chief worker, which
    only checks the store). Raises :class:`CurveStoreError` for an unusable tuning store."""
    if not cfg.curve_data:
        return None
    check_curve_store(cfg.curve_data, cfg.data)
    return LearningCurves(cfg, total_steps) if chief else None
