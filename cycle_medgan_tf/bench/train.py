"""Training speed against the machine's own convolution peak.

``python -m cycle_medgan_tf.bench.train --model=cyclegan|cycle_medgan|unit --size=128 --batch=1 --steps=10
[--precision=float32|mixed_bfloat16|mixed_float16] [--jit]`` prints one JSON line:

* ``conv_peak_gflops``: a large 3x3 convolution (``PEAK_SHAPE``, in the policy's compute dtype), forward plus both
  backward passes, measured by this command just before the training steps (median of ``--peak_repeats``), and
  again just before every timed step (``conv_peak_gflops_interleaved``; ``fraction_of_peak_interleaved`` is the
  median of the per-step ratios, which a slow period of a shared host affects least);
* ``step_s_median`` / ``img_per_s``: the real train step of the model (the trainer ``train`` uses, with its
  optimisers, pool and losses) on fixed random batches, after ``--warmup`` untimed steps;
* ``gflop_per_step``: from the networks' layers (:func:`step_flops`), so ``gflops_achieved / conv_peak_gflops`` is
  the fraction of the peak the step reaches, both measured in one run.
"""

from __future__ import annotations

import json
import os
import statistics
import time

from absl import flags

from cycle_medgan_tf.cli import fail, run_app

FLAGS = flags.FLAGS


def define_flags() -> None:
    """The command-line flags (defined only when run as a command, so that importing this module is free)."""
    flags.DEFINE_enum("model", "cyclegan", ["cyclegan", "cycle_medgan", "unit"], "Model whose train step is timed.")
    flags.DEFINE_integer("size", 128, "Image side (a multiple of 4).")
    flags.DEFINE_integer("batch", 1, "Batch size per domain.")
    flags.DEFINE_integer("steps", 10, "Timed steps (the median is reported).")
    flags.DEFINE_integer("warmup", 2, "Untimed steps first (tracing, oneDNN kernel selection).")
    flags.DEFINE_enum("precision", "float32", ["float32", "mixed_bfloat16", "mixed_float16"], "Keras dtype policy.")
    flags.DEFINE_bool("jit", False, "Compile the train step with XLA.")
    flags.DEFINE_integer("peak_repeats", 5, "Timed repeats of the peak convolution.")
    flags.DEFINE_string("extractor", "", "Feature-extractor weights for cycle_medgan ('' = the shipped one; it is "
                        "fully convolutional, so any --size works).")

# The peak convolution: the shape of the generators' residual-block convolutions at 256x256 (the bulk of a
# CycleGAN step's FLOPs), with a batch large enough for every kernel to be compute bound.
PEAK_SHAPE = dict(batch=8, side=64, channels_in=256, channels_out=256, kernel=3)


def peak_convolution(dtype: str = "float32"):
    """``(run, flop)``: a compiled forward + input-gradient + kernel-gradient pass of one large 3x3 convolution
    (``PEAK_SHAPE``), and its FLOPs."""
    import tensorflow as tf

    p = PEAK_SHAPE
    x = tf.random.normal((p["batch"], p["side"], p["side"], p["channels_in"]), dtype=dtype)
    kernel = tf.Variable(tf.random.normal((p["kernel"], p["kernel"], p["channels_in"], p["channels_out"]),
                                          stddev=0.02, dtype=dtype))

    @tf.function
    def fwd_bwd(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.nn.conv2d(x, kernel, 1, "SAME")
            loss = tf.reduce_sum(tf.cast(y, tf.float32))
        return tape.gradient(loss, [x, kernel])

    def run() -> float:
        """Wall seconds of one pass."""
        start = time.perf_counter()
        grads = fwd_bwd(x)
        float(tf.reduce_sum(grads[1]))
        return time.perf_counter() - start

    run()
    macs = p["batch"] * p["side"] ** 2 * p["kernel"] ** 2 * p["channels_in"] * p["channels_out"]
    return run, 3 * 2 * macs


def step_flops(trainer) -> dict:
    """FLOPs of one train step from the networks' layers: 2 x multiply-adds of every convolution and dense layer
    per forward call, and a backward pass costed at 2 x its forward for every call a gradient flows through
    (the convention of SPEC section 6). Returns ``{"total": ..., "forward_calls": {...}}``."""
    from cycle_medgan_tf.models.registry import forward_flops

    cfg = trainer.cfg
    shape = (cfg.image_size, cfg.image_size, cfg.channels)
    batch = cfg.batch_size
    if cfg.model in ("cyclegan", "cycle_medgan"):
        g = forward_flops(trainer.g_ab, shape)
        d = forward_flops(trainer.d_a, shape)
        # generator update: 4 generator calls, 2 discriminator calls (all with gradients);
        # discriminator update: 4 discriminator calls (real and pooled fake of each domain).
        calls = {"generator": (4, g, 3), "discriminator": (6, d, 3)}
        if getattr(trainer, "use_features", False):
            e = forward_flops(trainer.extractor, shape)
            # the frozen extractor: forward only on the real images, forward + input gradient on reconstructions
            calls["extractor_real"] = (2, e, 1)
            calls["extractor_reconstructed"] = (2, e, 2)
    elif cfg.model == "unit":
        nets = trainer.nets
        enc = forward_flops(nets["encoder_a"], shape)
        latent_shape = tuple(nets["shared_encoder"].inputs[0].shape[1:])
        shared = forward_flops(nets["shared_encoder"], latent_shape) + forward_flops(nets["shared_generator"],
                                                                                    latent_shape)
        dec = forward_flops(nets["decoder_a"], latent_shape)
        d = forward_flops(nets["discriminator_a"], shape)
        # discriminator update: the two translations (2 encodes, 2 decodes; the unused within-domain
        # reconstructions are pruned from the graph) without gradients, 4 D calls with;
        # generator update: 4 encodes, 6 decodes and 2 D calls, all with gradients.
        calls = {"d_update_translation": (1, 2 * (enc + shared) + 2 * dec, 1),
                 "d_update_discriminator": (4, d, 3),
                 "g_update_translation": (1, 4 * (enc + shared) + 6 * dec, 3),
                 "g_update_discriminator": (2, d, 3)}
    else:
        raise ValueError(f"no FLOP model for {cfg.model!r}")
    total = batch * sum(n * f * mult for n, f, mult in calls.values())
    return {"total": total, "per_sample_forward": {k: f for k, (n, f, m) in calls.items()}}


def build_trainer(model: str, size: int, batch: int, precision: str, jit: bool, extractor: str = ""):
    """The training-code trainer of ``model`` on a synthetic data description (no store needed)."""
    from cycle_medgan_tf.config import resolve_config
    from cycle_medgan_tf.train import trainer_class
    from cycle_medgan_tf.training.trainer import DataInfo

    cfg = resolve_config(model, "quick", dict(image_size=size, batch_size=batch, steps=1000, precision=precision,
                                              jit=jit, extractor=extractor))
    info = DataInfo(path="<synthetic>", task="bench", domain_a="A", domain_b="B", window_a=(-1.0, 1.0),
                    window_b=(-1.0, 1.0), pixel_spacing_mm=1.0, store_size=size, n_train_a=1000, n_train_b=1000)
    return trainer_class(model)(cfg, info)


def time_steps(trainer, steps: int, warmup: int, peak_run=None) -> tuple[list[float], list[float]]:
    """Wall seconds of each of ``steps`` train steps after ``warmup`` untimed ones (fixed random batches), and,
    with ``peak_run``, the time of a peak-convolution pass run just before each step (so that a slow period of a
    shared host slows both; their ratio is what the bench reports)."""
    import tensorflow as tf

    cfg = trainer.cfg
    shape = (cfg.batch_size, cfg.image_size, cfg.image_size, cfg.channels)
    a = tf.random.stateless_uniform(shape, [1, 2], -1.0, 1.0)
    b = tf.random.stateless_uniform(shape, [3, 4], -1.0, 1.0)
    times, peak_times = [], []
    for i in range(warmup + steps):
        if peak_run is not None and i >= warmup:
            peak_times.append(peak_run())
        start = time.perf_counter()
        losses = trainer.run_step(a, b, tf.constant(i, tf.int64))
        float(losses["d_total"])
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times, peak_times


def main(argv):
    del argv
    if FLAGS.size < 16 or FLAGS.size % 4 or FLAGS.batch < 1 or FLAGS.steps < 1 or FLAGS.warmup < 0:
        fail("--size must be a multiple of 4 and >= 16; --batch, --steps >= 1; --warmup >= 0")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    compute_dtype = {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}[FLAGS.precision]
    peak_run, peak_flop = peak_convolution(compute_dtype)
    peak_first = statistics.median(peak_run() for _ in range(FLAGS.peak_repeats))
    try:
        trainer = build_trainer(FLAGS.model, FLAGS.size, FLAGS.batch, FLAGS.precision, FLAGS.jit, FLAGS.extractor)
    except ValueError as exc:
        fail(str(exc))
    flop = step_flops(trainer)["total"]
    times, peak_times = time_steps(trainer, FLAGS.steps, FLAGS.warmup, peak_run)
    step_s = statistics.median(times)
    peak_gflops = peak_flop / peak_first / 1e9
    paired = [(flop / t) / (peak_flop / p) for t, p in zip(times, peak_times)]
    print(json.dumps(dict(
        model=FLAGS.model, size=FLAGS.size, batch=FLAGS.batch, precision=FLAGS.precision, jit=FLAGS.jit,
        steps=FLAGS.steps, tf_version=tf.__version__, cpu_threads=os.cpu_count(),
        step_s_median=round(step_s, 4), step_s_min=round(min(times), 4), step_s_max=round(max(times), 4),
        img_per_s=round(FLAGS.batch / step_s, 3), gflop_per_step=round(flop / 1e9, 2),
        gflops_achieved=round(flop / step_s / 1e9, 1), conv_peak_gflops=round(peak_gflops, 1),
        conv_peak_dtype=compute_dtype,
        fraction_of_peak=round(flop / step_s / 1e9 / peak_gflops, 3),
        conv_peak_gflops_interleaved=round(peak_flop / statistics.median(peak_times) / 1e9, 1),
        fraction_of_peak_interleaved=round(statistics.median(paired), 3))))


if __name__ == "__main__":
    define_flags()
    run_app(main)
