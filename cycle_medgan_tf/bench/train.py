"""Training speed against the machine's own convolution peak.

``python -m cycle_medgan_tf.bench.train --model=cyclegan|cycle_medgan|unit --size=128 --batch=1 --steps=10
[--precision=float32|mixed_bfloat16|mixed_float16] [--jit] [--versus_plain_conv]`` prints one JSON line:

* ``cpu``: the machine (:func:`bench.machine.describe_cpu`; results of different ``cpu.label`` are never compared);

* ``conv_peak_gflops``: a large 3x3 convolution (``PEAK_SHAPE``, in the policy's compute dtype), forward, input
  gradient and kernel gradient run one after another (:class:`PeakConvolution`), measured by this command just
  before the training steps (median of ``--peak_repeats``) and again just before every timed step
  (``fraction_of_peak_interleaved`` is the median of the per-step ratios, which a slow period of a shared host
  affects least); ``conv_peak_concurrent_gflops`` and ``fraction_of_concurrent_peak[_interleaved]`` are the same
  against the convolution's forward and backward pass as one graph, whose two backward kernels may overlap;
* ``step_s_median`` / ``img_per_s``: the real train step of the model (the trainer ``train`` uses, with its
  optimisers, pool and losses) on fixed random batches, after ``--warmup`` untimed steps;
* ``gflop_per_step``: from the networks' layers (:func:`step_flops`), so ``fraction_of_peak`` =
  ``gflops_achieved / conv_peak_gflops`` is the fraction of the peak the step reaches, both measured in one run.
"""

from __future__ import annotations

import json
import os
import statistics
import time

from absl import flags

from cycle_medgan_tf.cli import fail, run_app
from cycle_medgan_tf.config import MODELS, PRECISIONS

FLAGS = flags.FLAGS


def define_flags() -> None:
    """The command-line flags (defined only when run as a command, so that importing this module is free)."""
    flags.DEFINE_enum("model", "cyclegan", list(MODELS), "Model whose train step is timed.")
    flags.DEFINE_integer("size", 128, "Image side (a multiple of 4).")
    flags.DEFINE_integer("batch", 1, "Batch size per domain.")
    flags.DEFINE_integer("steps", 10, "Timed steps (the median is reported).")
    flags.DEFINE_integer("warmup", 2, "Untimed steps first (tracing, oneDNN kernel selection).")
    flags.DEFINE_enum("precision", "float32", list(PRECISIONS), "Keras dtype policy.")
    flags.DEFINE_bool("jit", False, "Compile the train step with XLA.")
    flags.DEFINE_integer("peak_repeats", 5, "Timed repeats of the peak convolution.")
    flags.DEFINE_string("extractor", "", "Feature-extractor weights for cycle_medgan ('' = the shipped one, native "
                        "at 4 mm pixels: --size 64, 128 or 256 over the default 256 mm field; images finer than the "
                        "extractor's scale are area-down-sampled for it).")
    flags.DEFINE_bool("versus_plain_conv", False, "Also time the same model built with the standard gradients of "
                      "the convolutions oneDNN is slow at (models/cpu_conv.py), interleaved step by step, and report "
                      "the speed-up as the median of the per-step ratios.")

# The peak convolution: the shape of the generators' residual-block convolutions at 256x256 (the bulk of a
# CycleGAN step's FLOPs), with a batch large enough for every kernel to be compute bound.
PEAK_SHAPE = dict(batch=8, side=64, channels_in=256, channels_out=256, kernel=3)


class PeakConvolution:
    """One large 3x3 convolution (``PEAK_SHAPE``) in ``dtype``, forward and both backward passes (input gradient,
    kernel gradient), timed two ways:

    * :meth:`sequential`: the three kernels one after another, each given the whole machine -- the convolution
      throughput a chain of dependent layers can count on;
    * :meth:`concurrent`: forward, then both backward kernels in one graph, which TensorFlow may run side by side
      (on 2 cores this is faster than either kernel alone) -- the best a single convolution gets.
    """

    def __init__(self, dtype: str = "float32"):
        import tensorflow as tf

        p = PEAK_SHAPE
        n, s, cin, cout, k = p["batch"], p["side"], p["channels_in"], p["channels_out"], p["kernel"]
        self.flop = 3 * 2 * n * s * s * k * k * cin * cout
        x = tf.random.normal((n, s, s, cin), dtype=dtype)
        dy = tf.random.normal((n, s, s, cout), dtype=dtype)
        kernel = tf.random.normal((k, k, cin, cout), stddev=0.02, dtype=dtype)
        forward = tf.function(lambda: tf.nn.conv2d(x, kernel, 1, "SAME"))
        input_grad = tf.function(lambda: tf.raw_ops.Conv2DBackpropInput(
            input_sizes=x.shape, filter=kernel, out_backprop=dy, strides=[1, 1, 1, 1], padding="SAME"))
        kernel_grad = tf.function(lambda: tf.raw_ops.Conv2DBackpropFilter(
            input=x, filter_sizes=kernel.shape, out_backprop=dy, strides=[1, 1, 1, 1], padding="SAME"))

        @tf.function
        def both():
            with tf.GradientTape() as tape:
                tape.watch([x, kernel])
                y = tf.nn.conv2d(x, kernel, 1, "SAME")
            return tape.gradient(y, [x, kernel], output_gradients=dy)

        self._parts, self._both = (forward, input_grad, kernel_grad), both
        self.sequential(), self.concurrent()       # trace, and let oneDNN pick its kernels

    @staticmethod
    def _timed(fn) -> float:
        start = time.perf_counter()
        out = fn()
        for t in out if isinstance(out, (list, tuple)) else [out]:
            t.numpy()
        return time.perf_counter() - start

    def sequential(self) -> float:
        """Wall seconds of the three kernels run one at a time."""
        return sum(self._timed(part) for part in self._parts)

    def concurrent(self) -> float:
        """Wall seconds of the forward and backward pass as one graph."""
        return self._timed(self._both)


def step_flops(trainer) -> dict:
    """FLOPs of one train step from the networks' layers: 2 x multiply-adds of every convolution and dense layer
    per forward call, and a backward pass costed at 2 x its forward for every call a gradient flows through (the
    usual convention). The calls are the family's FLOP hook (``catalogue.Family.flops``). Returns
    ``{"total": ..., "per_sample_forward": {call kind: FLOPs}}``."""
    from cycle_medgan_tf import catalogue

    family = catalogue.family(trainer.cfg.model)
    if family.flops is None:
        raise ValueError(f"no FLOP model for {family.name!r}")
    calls = catalogue.load(family.flops)(trainer)
    total = trainer.cfg.batch_size * sum(n * f * mult for n, f, mult in calls.values())
    return {"total": total, "per_sample_forward": {k: f for k, (n, f, m) in calls.items()}}


def bench_config(model: str, size: int, batch: int, precision: str, jit: bool, extractor: str = ""):
    """The checked training configuration the bench times (``ValueError`` for a bad setting; ``extractor`` only
    for the families that have one)."""
    from cycle_medgan_tf.config import resolve_config

    settings = dict(extractor=extractor) if extractor else {}
    return resolve_config(model, "quick", dict(image_size=size, batch_size=batch, steps=1000, precision=precision,
                                               jit=jit, **settings))


def build_trainer(cfg):
    """The training-code trainer of ``cfg`` on a synthetic data description (no store needed) with the default
    data's field of view, so that the feature extractor meets the images at the scale a default run has."""
    from cycle_medgan_tf.data.synth.anatomy import BUILD_PIXEL_MM, BUILD_SIZE
    from cycle_medgan_tf.catalogue import trainer_class
    from cycle_medgan_tf.training.trainer import DataInfo

    spacing = BUILD_SIZE * BUILD_PIXEL_MM / cfg.image_size
    info = DataInfo(path="<synthetic>", task="bench", domain_a="A", domain_b="B", window_a=(-1.0, 1.0),
                    window_b=(-1.0, 1.0), pixel_spacing_mm=spacing, store_size=cfg.image_size, n_train_a=1000,
                    n_train_b=1000)
    return trainer_class(cfg.model)(cfg, info)


def time_steps(trainer, steps: int, warmup: int, peak: PeakConvolution | None = None) -> tuple[list, list, list]:
    """Wall seconds of each of ``steps`` train steps after ``warmup`` untimed ones (fixed random batches), and, with
    ``peak``, the sequential and concurrent peak-convolution times measured just before each step (so that a slow
    period of a shared host slows both; their per-step ratios are what the bench reports)."""
    import tensorflow as tf

    cfg = trainer.cfg
    shape = (cfg.batch_size, cfg.image_size, cfg.image_size, cfg.channels)
    a = tf.random.stateless_uniform(shape, [1, 2], -1.0, 1.0)
    b = tf.random.stateless_uniform(shape, [3, 4], -1.0, 1.0)
    times, sequential, concurrent = [], [], []
    for i in range(warmup + steps):
        if peak is not None and i >= warmup:
            sequential.append(peak.sequential())
            concurrent.append(peak.concurrent())
        start = time.perf_counter()
        losses = trainer.run_step(a, b, tf.constant(i, tf.int64))
        float(losses["d_total"])
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times, sequential, concurrent


def time_pairs(trainer, other, steps: int, warmup: int) -> tuple[list, list]:
    """Wall seconds of ``steps`` train steps of ``trainer`` and of ``other``, alternating step by step (after
    ``warmup`` untimed steps of each), so that both see the same periods of a shared host."""
    first, second = [], []
    for _ in range(steps):
        first += time_steps(trainer, 1, warmup)[0]
        second += time_steps(other, 1, warmup)[0]
        warmup = 0
    return first, second


def _versus_plain_conv(cfg, trainer, steps: int, warmup: int) -> dict:
    """The step of ``trainer`` against the same model built with plain convolutions (no ``cpu_conv`` paths),
    interleaved."""
    from cycle_medgan_tf.models.cpu_conv import plain_convolutions

    with plain_convolutions():
        plain = build_trainer(cfg)
    fast, slow = time_pairs(trainer, plain, steps, warmup)
    return dict(versus_plain_conv=dict(
        step_s_median=round(statistics.median(fast), 4), plain_conv_step_s_median=round(statistics.median(slow), 4),
        speedup=round(statistics.median(s / f for f, s in zip(fast, slow)), 3), steps=steps))


def main(argv):
    del argv
    if FLAGS.steps < 1 or FLAGS.warmup < 0:
        fail("--steps >= 1 and --warmup >= 0 are required")
    try:           # size, batch and precision are checked where every training run checks them
        cfg = bench_config(FLAGS.model, FLAGS.size, FLAGS.batch, FLAGS.precision, FLAGS.jit, FLAGS.extractor)
    except ValueError as exc:
        fail(str(exc))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    compute_dtype = keras.mixed_precision.Policy(cfg.precision).compute_dtype
    peak = PeakConvolution(compute_dtype)
    peak_first = statistics.median(peak.sequential() for _ in range(FLAGS.peak_repeats))
    concurrent_first = statistics.median(peak.concurrent() for _ in range(FLAGS.peak_repeats))
    from cycle_medgan_tf.weights import WeightsError

    try:
        trainer = build_trainer(cfg)
    except (ValueError, WeightsError) as exc:      # e.g. an unreadable --extractor
        fail(str(exc))
    flop = step_flops(trainer)["total"]
    times, sequential, concurrent = time_steps(trainer, FLAGS.steps, FLAGS.warmup, peak)
    step_s = statistics.median(times)
    achieved = flop / step_s / 1e9
    peak_gflops = peak.flop / peak_first / 1e9

    def paired(peak_times):
        return round(statistics.median((flop / t) / (peak.flop / p) for t, p in zip(times, peak_times)), 3)

    extra = _versus_plain_conv(cfg, trainer, FLAGS.steps, FLAGS.warmup) if FLAGS.versus_plain_conv else {}
    from cycle_medgan_tf.bench.machine import describe_cpu

    print(json.dumps(dict(
        cpu=describe_cpu(), model=FLAGS.model, size=FLAGS.size, batch=FLAGS.batch, precision=FLAGS.precision,
        jit=FLAGS.jit,
        steps=FLAGS.steps, tf_version=tf.__version__, cpu_threads=os.cpu_count(),
        step_s_median=round(step_s, 4), step_s_min=round(min(times), 4), step_s_max=round(max(times), 4),
        img_per_s=round(FLAGS.batch / step_s, 3), gflop_per_step=round(flop / 1e9, 2),
        gflops_achieved=round(achieved, 1), conv_peak_gflops=round(peak_gflops, 1), conv_peak_dtype=compute_dtype,
        fraction_of_peak=round(achieved / peak_gflops, 3), fraction_of_peak_interleaved=paired(sequential),
        conv_peak_concurrent_gflops=round(peak.flop / concurrent_first / 1e9, 1),
        fraction_of_concurrent_peak=round(achieved * concurrent_first * 1e9 / peak.flop, 3),
        fraction_of_concurrent_peak_interleaved=paired(concurrent), **extra)))


if __name__ == "__main__":
    define_flags()
    run_app(main)
