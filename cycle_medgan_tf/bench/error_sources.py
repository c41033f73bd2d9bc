"""Where a translator's error comes from, beside Identity's (the input copied): the intensity scale, coarse
structure or fine detail.

    python -m cycle_medgan_tf.bench.error_sources --data=STORE --runs=NAME=RUN_DIR[,NAME=RUN_DIR...] [--sigma_px=2]

On the paired validation slices (a2b) of a store, inside the target's head mask, with images in the target's
window mapped to [0, 1] (PSNR's convention, ``evaluation.tissue.masked_psnr``), per slice:

- ``psnr_head``: 10 log10(1 / MSE), and ``mse_head``, the MSE itself;
- ``psnr_calibrated``: the same after the least-squares gain and offset that map the prediction onto the target
  inside the head (``gain``, ``offset``): what is left once the global intensity scale is right, which an unpaired
  method's losses never pin down; ``mse_scale`` is the part of the MSE that calibration removes;
- ``mse_coarse`` and ``mse_fine``: the calibrated residual split by a Gaussian of ``--sigma_px`` pixels (normalised
  inside the head, so the background does not leak in) into its low-pass part and the rest (their MSEs add up to
  the calibrated MSE up to a small cross term): misplaced or missing structure against lost or invented detail
  (blur, noise, ghosting);
- ``detail_ratio``: the prediction's fine-scale energy (the same high-pass) over the target's: below 1 detail was
  lost (blur), above 1 detail was invented (noise, ghosts).

One JSON line per row (Identity first, then every run): the means over slices and, for a run, the subject-level
difference run - Identity of both PSNRs, the three MSE parts and the detail ratio with its 95% bootstrap interval
(``evaluation.stats.bootstrap_difference``). A run whose ``psnr_head`` is below Identity's but whose
``psnr_calibrated`` is not has lost to Identity on intensity scale alone. It is a diagnostic
(benchmarks/RESULTS.md, motion correction), not part of Table I.
"""

from __future__ import annotations

import json

import numpy as np
from absl import flags
from scipy import ndimage

from cycle_medgan_tf.cli import fail, run_app

FLAGS = flags.FLAGS
MIN_HEAD_PIXELS = 50            # a slice with a smaller head mask is left out
COMPARED = ("psnr_head", "psnr_calibrated", "mse_scale", "mse_coarse", "mse_fine", "detail_ratio")
FIGURES = ("psnr_head", "psnr_calibrated", "mse_head", "mse_scale", "mse_coarse", "mse_fine", "detail_ratio", "gain",
           "offset")


def define_flags() -> None:
    flags.DEFINE_string("data", None, "A slice store (its paired validation set is scored).")
    flags.DEFINE_string("runs", None, "NAME=RUN_DIR[,NAME=RUN_DIR...]: runs with an a2b export.")
    flags.DEFINE_float("sigma_px", 2.0, "Gaussian sigma (pixels) splitting the residual into coarse and fine.",
                       lower_bound=0.3)


def _psnr(mse: float) -> float:
    return float("inf") if mse == 0.0 else -10.0 * np.log10(mse)


def _low_pass_inside(mask: np.ndarray, sigma: float):
    """A Gaussian low-pass that uses only the pixels of ``mask`` (normalised convolution; the mask's own blur is
    computed once for every image filtered with it)."""
    weight = ndimage.gaussian_filter(mask.astype(np.float64), sigma, mode="constant")

    def low_pass(image: np.ndarray) -> np.ndarray:
        smooth = ndimage.gaussian_filter(np.where(mask, image, 0.0), sigma, mode="constant")
        return np.where(weight > 1e-6, smooth / np.maximum(weight, 1e-6), 0.0)
    return low_pass


def slice_error_sources(target: np.ndarray, prediction: np.ndarray, mask: np.ndarray, sigma_px: float) -> dict:
    """The figures of the module docstring for one (H, W) slice in [0, 1] with its boolean head mask."""
    t, p = target[mask].astype(np.float64), prediction[mask].astype(np.float64)
    design = np.stack([p, np.ones_like(p)], axis=1)
    (gain, offset), *_ = np.linalg.lstsq(design, t, rcond=None)
    residual = np.zeros(target.shape)
    residual[mask] = t - (gain * p + offset)
    low_pass = _low_pass_inside(mask, sigma_px)
    coarse = low_pass(residual)
    detail = [np.mean(np.square((image - low_pass(image))[mask]))
              for image in (prediction.astype(np.float64), target.astype(np.float64))]
    mse_head, mse_calibrated = float(np.mean(np.square(t - p))), float(np.mean(np.square(residual[mask])))
    return dict(psnr_head=_psnr(mse_head), psnr_calibrated=_psnr(mse_calibrated), mse_head=mse_head,
                mse_scale=mse_head - mse_calibrated, mse_coarse=float(np.mean(np.square(coarse[mask]))),
                mse_fine=float(np.mean(np.square((residual - coarse)[mask]))),
                detail_ratio=float(detail[0] / detail[1]) if detail[1] > 0 else float("nan"), gain=float(gain),
                offset=float(offset))


def error_sources(target, prediction, mask, window, sigma_px: float = 2.0) -> dict[str, np.ndarray]:
    """Per-slice figures of (N, H, W) physical images in ``window`` (NaN for slices with a head under 50 px)."""
    from cycle_medgan_tf.evaluation.tissue import to_unit_window

    t, p = to_unit_window(target, window), to_unit_window(prediction, window)
    out = {k: np.full(len(t), np.nan) for k in FIGURES}
    for i in range(len(t)):
        if mask[i].sum() >= MIN_HEAD_PIXELS:
            for key, value in slice_error_sources(t[i], p[i], mask[i], sigma_px).items():
                out[key][i] = value
    return out


def _rounded(value):
    return None if value is None else float(f"{value:.5g}")


def _summary(values: dict[str, np.ndarray]) -> dict:
    return {k: _rounded(float(np.nanmean(v))) for k, v in values.items()}


def compare(rows: dict[str, dict], subjects, reference: str) -> dict[str, dict]:
    """Subject-level difference row - ``reference`` of the compared figures of every other row."""
    from cycle_medgan_tf.evaluation.stats import bootstrap_difference, subject_matrix

    out = {}
    for name, values in rows.items():
        if name == reference:
            continue
        out[name] = {}
        for key in COMPARED:
            run, ref = (subject_matrix([rows[n][key]], subjects)[0] for n in (name, reference))
            d = bootstrap_difference(run, ref)
            out[name][key] = dict(d, diff=_rounded(d["diff"]),
                                  ci95=None if d["ci95"] is None else [_rounded(c) for c in d["ci95"]])
    return out


def main(argv):
    del argv
    from cycle_medgan_tf.data.store import from_model_range
    from cycle_medgan_tf.evaluate import IDENTITY_ROW, read_validation
    from cycle_medgan_tf.evaluation.runs import EvaluationError, required_runs, translate
    from cycle_medgan_tf.evaluation.tissue import head_mask

    try:
        runs = required_runs(FLAGS.data, FLAGS.runs)
        val = read_validation(FLAGS.data, runs, "a2b", None, False)
        predictions = {IDENTITY_ROW: (None, val.inputs)}
        for name, dirs in runs.items():
            for run_dir in dirs:
                label = name if len(dirs) == 1 else f"{name}:{run_dir}"
                predictions[label] = (run_dir, translate(name, run_dir, "a2b", val.inputs, 16))
    except (EvaluationError, OSError) as exc:
        fail(str(exc))
    target = from_model_range(val.target, val.target_window)
    mask = head_mask(target, val.dest, val.target_window)
    rows = {name: error_sources(target, from_model_range(p, val.target_window), mask, val.target_window,
                                FLAGS.sigma_px) for name, (_, p) in predictions.items()}
    differences = compare(rows, val.subjects, IDENTITY_ROW)
    for name, (run_dir, _) in predictions.items():
        line = dict(row=name, dir=run_dir, sigma_px=FLAGS.sigma_px,
                    slices=int(np.isfinite(rows[name]["psnr_head"]).sum()), **_summary(rows[name]))
        if name in differences:
            line["minus_identity"] = differences[name]
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    define_flags()
    run_app(main)
