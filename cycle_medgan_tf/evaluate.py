"""Evaluate trained translators on the paired validation set: Table I (SSIM, PSNR, LPIPS, VIF) and Fig. 3.

    python -m cycle_medgan_tf.evaluate --data=STORE.h5 \
        --runs=unit=RUN1,cyclegan=RUN2,cycle_medgan=RUN3 --out=DIR \
        [--direction=a2b|b2a] [--max_slices=N] [--identity] [--degrade=blur,noise,blur+noise] \
        [--batch_size=16] [--overwrite]

For a2b the input is val/A and the target val/B (b2a swaps them), both mapped to [-1, 1] through the store's
windows. Every run's exported model (``RUN/export``) must come from the same task, domains, windows and image
size as the store. Writes table1.md, table1.csv, table1.tex, table1.json and fig3.png into ``--out`` and prints the
Markdown table. ``--identity`` adds a row whose prediction is the input itself; ``--degrade`` adds rows whose
prediction is the *target* degraded synthetically (Gaussian blur of sigma ``BLUR_SIGMA_PX`` pixels, Gaussian noise
of standard deviation ``NOISE_STD`` in model range [-1, 1] with seed ``DEGRADE_SEED``, clipped to [-1, 1], or
both: blur then the same noise), which checks the metrics end to end without any training.
"""

from __future__ import annotations

import os
from typing import Mapping, Sequence

import numpy as np
from absl import flags

from cycle_medgan_tf.cli import run_app
from cycle_medgan_tf.data.store import StoreError, open_store, to_model_range
from cycle_medgan_tf.data.validate import validate_store
from cycle_medgan_tf.evaluation import report
from cycle_medgan_tf.evaluation.metrics import compute_metrics
from cycle_medgan_tf.evaluation.table import MODEL_NAMES, render_markdown
from cycle_medgan_tf.export import ExportError, export_dir, read_manifest

DIRECTIONS = ("a2b", "b2a")
IDENTITY_ROW = "Identity"
BLUR_SIGMA_PX = 1.5
NOISE_STD = 0.1
DEGRADE_SEED = 1234
DEGRADATIONS = {"blur": "Target+blur", "noise": "Target+noise", "blur+noise": "Target+blur+noise"}

FLAGS = flags.FLAGS


def define_flags() -> None:
    """Define the command-line flags (only when run as a program, so importing never clashes with other flags)."""
    flags.DEFINE_string("data", None, "HDF5 slice store (format v1) with the paired validation set.")
    flags.DEFINE_string("runs", "", "Comma-separated NAME=RUN_DIR with NAME in unit, cyclegan, cycle_medgan.")
    flags.DEFINE_string("out", None, "Output directory for table1.* and fig3.png.")
    flags.DEFINE_string("direction", "a2b", "Translation direction: a2b (input val/A, target val/B) or b2a.")
    flags.DEFINE_integer("max_slices", None, "Evaluate at most this many validation slices (evenly spaced).")
    flags.DEFINE_bool("identity", False, "Add an 'Identity' row: the input copied as the prediction.")
    flags.DEFINE_list("degrade", [], "Add rows with the target degraded: any of blur, noise, blur+noise.")
    flags.DEFINE_integer("batch_size", 16, "Batch size for the translators and LPIPS.")
    flags.DEFINE_integer("fig_rows", 6, "At most this many example rows (one per validation subject) in fig3.png.")
    flags.DEFINE_bool("overwrite", False, "Replace existing output files.")


class EvaluationError(Exception):
    """A problem with the evaluation's inputs; the message is one line meant for the user."""


def parse_runs(spec: str) -> dict[str, str]:
    """``"unit=DIR,cycle_medgan=DIR"`` -> ``{"unit": "DIR", "cycle_medgan": "DIR"}`` (names checked)."""
    runs: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in (spec or "").split(","))):
        name, sep, path = item.partition("=")
        name = name.strip()
        if not sep or not path.strip():
            raise EvaluationError(f"--runs entry {item!r} is not NAME=RUN_DIR")
        if name not in MODEL_NAMES:
            raise EvaluationError(f"--runs: unknown model {name!r} (expected one of {', '.join(MODEL_NAMES)})")
        if name in runs:
            raise EvaluationError(f"--runs: model {name!r} given twice")
        runs[name] = path.strip()
    return runs


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


def _check_outputs(out: str, overwrite: bool) -> None:
    if os.path.exists(out) and not os.path.isdir(out):
        raise EvaluationError(f"--out {out} exists and is not a directory")
    existing = [name for name in report.OUTPUT_FILES if os.path.exists(os.path.join(out, name))]
    if existing and not overwrite:
        raise EvaluationError(f"{os.path.join(out, existing[0])} already exists (use --overwrite to replace it)")


def _check_run(name: str, run_dir: str, direction: str, store) -> dict:
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
    for key, window in (("window_a", store.window_a), ("window_b", store.window_b)):
        try:
            matches = np.allclose(np.asarray(manifest.get(key), dtype=np.float64), window, rtol=1e-6, atol=1e-6)
        except (TypeError, ValueError):
            matches = False
        if not matches:
            problems.append(f"its {key} {manifest.get(key)} differs from the data's {list(window)}")
    if direction not in manifest.get("directions", []):
        problems.append(f"it has no exported direction {direction!r}")
    elif not os.path.isfile(os.path.join(export_dir(run_dir), direction, "saved_model.pb")):
        problems.append(f"{os.path.join(export_dir(run_dir), direction)} holds no SavedModel")
    if problems:
        raise EvaluationError(f"run {name} ({run_dir}): " + "; ".join(problems))
    return manifest


def _slice_indices(n: int, max_slices: int | None) -> np.ndarray:
    if max_slices is None or max_slices >= n:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_slices).round().astype(int))


def _read_rows(dataset, keep: np.ndarray) -> np.ndarray:
    """Rows ``keep`` (sorted, unique) of an HDF5 dataset; one contiguous read when all rows are wanted."""
    return dataset[()] if len(keep) == dataset.shape[0] else dataset[keep]


def _translate(name: str, run_dir: str, direction: str, inputs: np.ndarray, batch_size: int) -> np.ndarray:
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


def evaluate(data, runs: Mapping[str, str], out, *, direction: str = "a2b", max_slices: int | None = None,
             identity: bool = False, degrade: Sequence[str] = (), batch_size: int = 16, fig_rows: int = 6,
             overwrite: bool = False) -> dict:
    """Evaluate runs (``{"unit"|"cyclegan"|"cycle_medgan": RUN_DIR}``) on the store's paired validation set.

    Writes table1.{md,csv,tex,json} and fig3.png into ``out`` and returns the ``table1.json`` dictionary.
    Raises :class:`EvaluationError` with a one-line message for any problem with the inputs.
    """
    from cycle_medgan_tf.evaluation.lpips import LPIPSWeightsError, load_weights

    data, out = os.fspath(data), os.fspath(out)
    runs = {name: os.fspath(path) for name, path in runs.items()}
    unknown = [name for name in runs if name not in MODEL_NAMES]
    if unknown:
        raise EvaluationError(f"unknown model {unknown[0]!r} (expected one of {', '.join(MODEL_NAMES)})")
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
    if not (runs or identity or degrade):
        raise EvaluationError("nothing to evaluate: give --runs, --identity or --degrade")
    _check_outputs(out, overwrite)
    problems = validate_store(data)
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise EvaluationError(f"{data} is not a valid slice store: {problems[0]}{more}")
    try:
        load_weights()
    except LPIPSWeightsError as exc:
        raise EvaluationError(str(exc)) from exc

    src, dst = ("A", "B") if direction == "a2b" else ("B", "A")
    try:
        with open_store(data, validate=False) as store:
            for name, run_dir in runs.items():
                _check_run(name, run_dir, direction, store)
            keep = _slice_indices(len(store.val_images(src)), max_slices)
            inputs = to_model_range(_read_rows(store.val_images(src), keep), store.window(src))
            target = to_model_range(_read_rows(store.val_images(dst), keep), store.window(dst))
            subjects = store.val_subjects()[keep]
            task, source, dest = store.task, store.domain_name(src), store.domain_name(dst)
            source_window, target_window = store.window(src), store.window(dst)
    except (StoreError, OSError) as exc:
        raise EvaluationError(f"cannot read {data}: {exc}") from exc

    predictions: dict[str, np.ndarray] = {}
    for name in MODEL_NAMES:                           # table order: UNIT, CycleGAN, Cycle-MedGAN
        if name in runs:
            predictions[MODEL_NAMES[name]] = _translate(name, runs[name], direction, inputs, batch_size)
    if identity:
        predictions[IDENTITY_ROW] = inputs
    for kind in DEGRADATIONS:
        if kind in degrade:
            predictions[DEGRADATIONS[kind]] = degrade_target(target, kind)

    per_slice = {row: compute_metrics(target, prediction, batch_size=batch_size)
                 for row, prediction in predictions.items()}
    conventions = {
        "evaluation": {
            "direction": direction, "input": f"val/{src} ({source})", "reference": f"val/{dst} ({dest}), the target",
            "window_input": list(source_window), "window_target": list(target_window),
            "slices": "all" if max_slices is None else f"at most {max_slices}, evenly spaced",
            "identity": "prediction = input image" if identity else None,
            "degradations": {DEGRADATIONS[k]: _degradation_text(k) for k in DEGRADATIONS if k in degrade},
        }
    }
    results = report.build_results(f"{task}", per_slice, subjects, conventions)
    os.makedirs(out, exist_ok=True)
    report.write_tables(out, results)
    _write_figure(out, inputs, target, predictions, per_slice, subjects, source, dest, source_window,
                  target_window, fig_rows, title=f"{task}: {source} -> {dest} (validation, {len(subjects)} slices)")
    return report.load_results(os.path.join(out, "table1.json"))


def _degradation_text(kind: str) -> str:
    parts = []
    if "blur" in kind:
        parts.append(f"Gaussian blur sigma {BLUR_SIGMA_PX} px")
    if "noise" in kind:
        parts.append(f"Gaussian noise std {NOISE_STD} in [-1, 1] (seed {DEGRADE_SEED})")
    return "target + " + " then ".join(parts) + ", clipped to [-1, 1]"


def _write_figure(out, inputs, target, predictions, per_slice, subjects, source, dest, source_window, target_window,
                  fig_rows, title):
    from cycle_medgan_tf.evaluation.figure import render_fig3

    columns = {name: images for name, images in predictions.items() if name != IDENTITY_ROW}
    render_fig3(os.path.join(out, report.FIGURE_FILE), inputs=inputs, target=target, predictions=columns,
                per_slice=per_slice, subjects=subjects, source_domain=source, target_domain=dest,
                source_window=source_window, target_window=target_window, max_rows=fig_rows, title=title,
                input_metrics=IDENTITY_ROW if IDENTITY_ROW in per_slice else None)


def main(argv: list[str]) -> int:
    """Command-line entry point (see the module docstring)."""
    if not FLAGS.data:
        raise EvaluationError("--data is required (an HDF5 slice store)")
    if not FLAGS.out:
        raise EvaluationError("--out is required (an output directory)")
    results = evaluate(FLAGS.data, parse_runs(FLAGS.runs), FLAGS.out, direction=FLAGS.direction,
                       max_slices=FLAGS.max_slices, identity=FLAGS.identity, degrade=FLAGS.degrade,
                       batch_size=FLAGS.batch_size, fig_rows=FLAGS.fig_rows, overwrite=FLAGS.overwrite)
    print(render_markdown([results]), end="")
    print(f"wrote {', '.join(report.OUTPUT_FILES)} to {FLAGS.out}")
    return 0


if __name__ == "__main__":
    define_flags()
    run_app(main, errors=(EvaluationError,))
