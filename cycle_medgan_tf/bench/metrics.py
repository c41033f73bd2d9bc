"""Evaluation speed: ``python -m cycle_medgan_tf.bench.metrics [--slices=420 --size=256 --repeats=3]`` prints one
JSON line with the median wall time of all four metrics (SSIM, PSNR, LPIPS, VIF) on that many slice pairs, and of
each metric alone. The pairs are a smooth head-like phantom and a noisy, blurred copy of it."""

from __future__ import annotations

import json
import statistics
import time

import numpy as np
from absl import flags

from cycle_medgan_tf.cli import fail, run_app

FLAGS = flags.FLAGS


def define_flags() -> None:
    """The command-line flags (defined only when run as a command, so that importing this module is free)."""
    flags.DEFINE_integer("slices", 420, "Slice pairs (the paper's PET/CT validation set has 420).")
    flags.DEFINE_integer("size", 256, "Slice side.")
    flags.DEFINE_integer("repeats", 3, "Timed repeats; the median is reported.")


def _pairs(n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size] / size - 0.5
    radius = np.hypot(yy, xx)
    base = np.where(radius < 0.35, 0.2 + 0.3 * np.cos(40 * yy) * np.sin(30 * xx), -1.0)
    reference = np.clip(base[None] + rng.normal(0, 0.05, (n, size, size)), -1, 1)
    prediction = np.clip(gaussian_filter(reference, (0, 1.2, 1.2)) + rng.normal(0, 0.05, reference.shape), -1, 1)
    return reference.astype(np.float32), prediction.astype(np.float32)


def main(argv):
    del argv
    if FLAGS.slices < 1 or FLAGS.size < 32 or FLAGS.repeats < 1:
        fail("--slices >= 1, --size >= 32 and --repeats >= 1 are required")
    from cycle_medgan_tf.evaluation import metrics

    reference, prediction = _pairs(FLAGS.slices, FLAGS.size)
    metrics.lpips(reference[:2], prediction[:2])          # load weights and build the network once
    timings: dict[str, list[float]] = {}
    for _ in range(FLAGS.repeats):
        for name, fn in (("all_four", metrics.compute_metrics), ("ssim", metrics.ssim), ("psnr", metrics.psnr),
                         ("vif", metrics.vif), ("lpips", metrics.lpips)):
            start = time.perf_counter()
            fn(reference, prediction)
            timings.setdefault(name, []).append(time.perf_counter() - start)
    print(json.dumps(dict(slices=FLAGS.slices, size=FLAGS.size, repeats=FLAGS.repeats,
                          **{f"{k}_s_median": round(statistics.median(v), 2) for k, v in timings.items()})))


if __name__ == "__main__":
    define_flags()
    run_app(main)
