"""Trained runs given to the evaluation: parsing ``--runs``, checking exports against the store, inference.

``--runs`` takes ``NAME=DIR`` items separated by commas, with several run directories of one model (one per
training seed) joined by ``+``: ``cyclegan=runs/cyclegan/seed_0+runs/cyclegan/seed_1,unit=runs/unit/seed_0``.
"""

from __future__ import annotations

import json
import os

import numpy as np

from cycle_medgan_tf.data.window import WindowError, manifest_window
from cycle_medgan_tf.evaluation.table import MODEL_NAMES
from cycle_medgan_tf.export import ExportError, export_dir, read_manifest

RUN_SEPARATOR = "+"


class EvaluationError(Exception):
    """A problem with the evaluation's inputs; the message is one line meant for the user."""


def required_runs(data, spec) -> dict[str, list[str]]:
    """The ``--data`` / ``--runs`` pair of a command that scores runs on a store: both given, the runs parsed."""
    if not data or not spec:
        raise EvaluationError("--data and --runs are required")
    return parse_runs(spec)


def parse_runs(spec: str) -> dict[str, list[str]]:
    """``"unit=D1+D2,cycle_medgan=D3"`` -> ``{"unit": ["D1", "D2"], "cycle_medgan": ["D3"]}`` (checked)."""
    runs: dict[str, list[str]] = {}
    for item in filter(None, (part.strip() for part in (spec or "").split(","))):
        name, sep, paths = item.partition("=")
        name = name.strip()
        dirs = [p.strip() for p in paths.split(RUN_SEPARATOR)]
        if not sep or not all(dirs):
            raise EvaluationError(f"--runs entry {item!r} is not NAME=RUN_DIR[+RUN_DIR...]")
        if name not in MODEL_NAMES:
            raise EvaluationError(f"--runs: unknown model {name!r} (expected one of {', '.join(MODEL_NAMES)})")
        if name in runs:
            raise EvaluationError(f"--runs: model {name!r} given twice (join its run directories with "
                                  f"'{RUN_SEPARATOR}')")
        runs[name] = dirs
    return runs


def normalise_runs(runs) -> dict[str, list[str]]:
    """``{model: DIR or [DIR, ...]}`` -> ``{model: [DIR, ...]}`` in Table I order, names and repeats checked."""
    unknown = [name for name in runs if name not in MODEL_NAMES]
    if unknown:
        raise EvaluationError(f"unknown model {unknown[0]!r} (expected one of {', '.join(MODEL_NAMES)})")
    out = {}
    for name in MODEL_NAMES:
        if name not in runs:
            continue
        dirs = [runs[name]] if isinstance(runs[name], (str, os.PathLike)) else list(runs[name])
        dirs = [os.fspath(d) for d in dirs]
        if not dirs:
            raise EvaluationError(f"model {name!r} has no run directory")
        repeated = [d for d in dirs if [os.path.abspath(x) for x in dirs].count(os.path.abspath(d)) > 1]
        if repeated:
            raise EvaluationError(f"model {name!r}: run directory {repeated[0]} given twice")
        out[name] = dirs
    return out


def _training_seed(run_dir: str):
    try:
        with open(os.path.join(run_dir, "config.json"), encoding="utf-8") as f:
            seed = json.load(f).get("seed")
    except (OSError, ValueError, AttributeError):
        return None
    return seed if isinstance(seed, int) else None


def replicate_labels(runs: dict[str, list[str]]) -> list[str]:
    """Names of the per-seed tables: the k-th run of every model forms replicate k, named ``seed_S`` when those
    runs' ``config.json`` all record training seed S (and the names are unique), else ``replicate_k``."""
    count = max((len(dirs) for dirs in runs.values()), default=0)
    labels = []
    for k in range(count):
        seeds = {_training_seed(dirs[k]) for dirs in runs.values() if len(dirs) > k}
        labels.append(f"seed_{seeds.pop()}" if len(seeds) == 1 and None not in seeds else None)
    if None in labels or len(set(labels)) != len(labels):
        labels = [f"replicate_{k}" for k in range(count)]
    return labels


def check_run(name: str, run_dir: str, direction: str, store) -> dict:
    """Read a run's export manifest and check that it fits the store; returns the manifest."""
    try:
        manifest = read_manifest(run_dir)
    except ExportError as exc:
        raise EvaluationError(f"run {name}: {exc}") from exc
    problems = []
    if manifest.get("model") != name:
        problems.append(f"it holds a {manifest.get('model')!r} model, not {name!r}")
    if str(manifest.get("task")) != store.task:
        problems.append(f"it was trained on task {manifest.get('task')!r}, the data are task {store.task!r}")
    if int(manifest.get("image_size", -1)) != store.image_size:
        problems.append(f"its image size is {manifest.get('image_size')}, the data's is {store.image_size}")
    if (manifest.get("domain_a"), manifest.get("domain_b")) != (store.domain_a, store.domain_b):
        problems.append(f"its domains are {manifest.get('domain_a')}->{manifest.get('domain_b')}, "
                        f"the data's {store.domain_a}->{store.domain_b}")
    for letter, window in (("a", store.window_a), ("b", store.window_b)):
        try:
            trained = manifest_window(manifest, letter)
        except (KeyError, TypeError, WindowError):
            trained = None
        if trained is None or not trained.same_as(window):
            problems.append(f"its window_{letter} {trained!r} differs from the data's {window!r}")
    for domain in ("a", "b"):   # manifests of runs from stores without a normalisation say nothing: "none"
        trained = (manifest.get(f"normalisation_{domain}") or {}).get("method", "none")
        stored = store.normalisation(domain.upper())["method"]
        if trained != stored:
            problems.append(f"it was trained on {domain.upper()} normalised by {trained!r}, the data use {stored!r}")
    if direction not in manifest.get("directions", []):
        problems.append(f"it has no exported direction {direction!r}")
    elif not os.path.isfile(os.path.join(export_dir(run_dir), direction, "saved_model.pb")):
        problems.append(f"{os.path.join(export_dir(run_dir), direction)} holds no SavedModel")
    if problems:
        raise EvaluationError(f"run {name} ({run_dir}): " + "; ".join(problems))
    return manifest


def translate(name: str, run_dir: str, direction: str, inputs: np.ndarray, batch_size: int) -> np.ndarray:
    """The run's exported translator applied to (N, H, W) inputs in [-1, 1]; checked shape and finite values."""
    from cycle_medgan_tf.export import load_translator

    try:
        translator = load_translator(run_dir, direction, batch_size=batch_size)
        prediction = np.asarray(translator(inputs[..., None]))
    except ExportError as exc:
        raise EvaluationError(f"run {name}: {exc}") from exc
    except Exception as exc:  # TensorFlow raises many types when an exported graph cannot run
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise EvaluationError(f"run {name}: inference failed ({type(exc).__name__}: {message})") from exc
    if prediction.shape != inputs.shape + (1,):
        raise EvaluationError(f"run {name}: the model returned shape {prediction.shape} for input "
                              f"{inputs.shape + (1,)}")
    if not np.all(np.isfinite(prediction)):
        raise EvaluationError(f"run {name}: the model produced NaN or Inf values")
    return prediction[..., 0]
