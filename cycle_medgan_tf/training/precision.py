"""``--precision=auto``: the training precision chosen by a measurement on the machine at hand.

CPU flags do not tell whether bfloat16 pays off (one CPU that reports AVX512-BF16 trains 1.8x faster in bfloat16,
another that reports it too 1.6x slower), so at the start of a run a representative convolution is timed: the
3x3, 256 -> 256 residual-block convolution of the ResNet-9 generators (``PROBE_SHAPE``: their shape at 64x64, batch
1; what is compared is the kernels' relative speed, and a larger shape would cost seconds on a CPU whose bfloat16 is
emulated), forward and both backward kernels in one graph, in float32 and in bfloat16, interleaved (the order
alternating every round), medians compared. ``mixed_bfloat16`` is taken only when it is at least
``BF16_MIN_SPEEDUP`` (config.py) times faster; with a GPU the rule is float32 without a probe. The record (both
medians, the ratio, the rule, the choice) is kept in
``config.json`` as ``precision_probe``; a resumed run keeps the precision it started with and is never re-measured.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import time

from cycle_medgan_tf.config import BF16_MIN_SPEEDUP, PRECISIONS, TrainConfig, current_layout

PROBE_SHAPE = (1, 16, 16, 256)   # a residual-block input of the generators at 64x64: most of a CycleGAN step's FLOPs
PROBE_MIN_ROUNDS = 3
PROBE_MAX_ROUNDS = 9
PROBE_BUDGET_S = 1.5             # timed rounds stop after this once PROBE_MIN_ROUNDS are done, and at twice this anyway
RECORD_FIELDS = ("precision", "precision_probe")


def _probe_step(dtype: str):
    """A compiled forward + backward of the probe convolution in ``dtype``, returning a float32 scalar."""
    import tensorflow as tf

    channels = PROBE_SHAPE[-1]
    x = tf.random.stateless_normal(PROBE_SHAPE, [0, 1], dtype=tf.float32)
    kernel = tf.random.stateless_normal((3, 3, channels, channels), [0, 2], stddev=0.02)
    x, kernel = tf.cast(x, dtype), tf.cast(kernel, dtype)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            tape.watch([x, kernel])
            y = tf.nn.relu(tf.nn.conv2d(x, kernel, 1, "SAME"))
        dx, dk = tape.gradient(y, [x, kernel], output_gradients=tf.ones_like(y))
        return tf.cast(tf.reduce_sum(dx), tf.float32) + tf.cast(tf.reduce_sum(dk), tf.float32)

    return step


def _seconds(fn) -> float:
    start = time.perf_counter()
    float(fn())
    return time.perf_counter() - start


def time_probe(budget_s: float = PROBE_BUDGET_S) -> dict:
    """Median wall milliseconds of the probe in float32 and bfloat16 (``bfloat16_ms`` None, with ``bfloat16_error``,
    when this TensorFlow cannot run it), the rounds timed and the seconds the whole probe took."""
    t0 = time.perf_counter()
    steps = {"float32": _probe_step("float32")}
    out = dict(shape=list(PROBE_SHAPE), kernel=3)
    _seconds(steps["float32"])         # trace, and let oneDNN pick its kernels
    try:
        steps["bfloat16"] = _probe_step("bfloat16")
        _seconds(steps["bfloat16"])
    except Exception as exc:  # no bfloat16 kernel in this build or on this device
        out.update(bfloat16_ms=None, bfloat16_error=f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}")
        steps.pop("bfloat16", None)
    times = {name: [] for name in steps}
    order = list(steps)
    start = time.perf_counter()
    for round_index in range(PROBE_MAX_ROUNDS):
        for name in order if round_index % 2 == 0 else order[::-1]:
            times[name].append(_seconds(steps[name]))
        elapsed = time.perf_counter() - start
        if elapsed > 2 * budget_s or (elapsed > budget_s and round_index + 1 >= PROBE_MIN_ROUNDS):
            break
    for name, values in times.items():
        out[f"{name}_ms"] = round(1e3 * statistics.median(values), 3)
    out.update(rounds=len(times["float32"]), probe_s=round(time.perf_counter() - t0, 2))
    return out


def choose_precision(timings: dict | None, gpu: bool) -> tuple[str, str]:
    """(policy, rule that chose it) from the probe's timings; ``timings`` is unused with a GPU."""
    if gpu:
        return "float32", "GPU present: float32"
    f32, bf16 = timings.get("float32_ms"), timings.get("bfloat16_ms")
    if not bf16:
        return "float32", "bfloat16 probe unavailable: float32"
    ratio = f32 / bf16
    if ratio >= BF16_MIN_SPEEDUP:
        return "mixed_bfloat16", f"bfloat16 {ratio:.2f}x faster than float32 (>= {BF16_MIN_SPEEDUP}): mixed_bfloat16"
    return "float32", f"bfloat16 only {ratio:.2f}x the float32 speed (< {BF16_MIN_SPEEDUP}): float32"


def previous_config(workdir: str) -> dict | None:
    """The ``config.json`` of the run in ``workdir`` (in today's layout: ``config.current_layout``), or None if
    there is none (or it is unreadable)."""
    try:
        with open(os.path.join(workdir, "config.json")) as f:
            config = json.load(f)
    except (OSError, ValueError):
        return None
    return current_layout(config) if isinstance(config, dict) else None


def _kept_from(cfg: TrainConfig, previous: dict | None, ignore_fields) -> dict | None:
    """``previous`` if ``cfg`` resumes it (same settings apart from the precision record and ``ignore_fields``) and
    asks for its precision or for ``auto``."""
    if not previous or previous.get("precision") not in PRECISIONS or cfg.precision not in ("auto",
                                                                                             previous["precision"]):
        return None
    skip = set(ignore_fields) | set(RECORD_FIELDS)
    current, previous = json.loads(cfg.to_json()), current_layout(previous)
    same = ({k: v for k, v in previous.items() if k not in skip} == {k: v for k, v in current.items() if k not in skip})
    return previous if same else None


def _measured(cfg: TrainConfig, timings: dict | None, gpu: bool | None) -> dict:
    """The probe record of a fresh ``auto`` run (measuring unless ``timings`` are given)."""
    if gpu is None:
        import tensorflow as tf
        gpu = bool(tf.config.list_physical_devices("GPU"))
    if timings is None and not gpu:
        timings = time_probe()
    choice, rule = choose_precision(timings, gpu)
    record = dict(requested="auto", choice=choice, rule=rule, threshold=BF16_MIN_SPEEDUP, **(timings or {}))
    if timings and timings.get("bfloat16_ms"):
        record["bf16_speedup"] = round(timings["float32_ms"] / timings["bfloat16_ms"], 3)
    return record


def resolve_precision(cfg: TrainConfig, previous: dict | None = None, ignore_fields=(), dist=None,
                      timings: dict | None = None, gpu: bool | None = None) -> tuple[TrainConfig, str]:
    """``cfg`` with ``precision == "auto"`` replaced by a policy and ``precision_probe`` filled, and a log line.

    ``previous`` is the ``config.json`` of the run being resumed (its precision is kept); ``timings`` and ``gpu``
    stand in for the measurement and the device query (tests). Under a multi-worker ``dist`` with ``auto`` every
    worker takes the chief's choice (a collective: call it on every worker)."""
    kept = _kept_from(cfg, previous, ignore_fields)
    if kept is not None:
        record = kept.get("precision_probe") or {}
        if not record and cfg.precision == "auto":       # the resumed run did not measure: it keeps what it had
            record = dict(requested="auto", choice=kept["precision"], rule="kept: the resumed run started with it")
        precision = kept["precision"]
        message = f"precision {precision} (kept from the run being resumed)"
    elif cfg.precision == "auto":
        record = _measured(cfg, timings, gpu)
        precision = record["choice"]
        message = f"precision {precision} (auto: {record['rule']})"
    else:
        precision, record = cfg.precision, {}
        message = f"precision {precision} (explicit)"
    if dist is not None and dist.num_workers > 1 and record:     # every worker asked for auto
        chief = PRECISIONS[int(dist.chief_value(PRECISIONS.index(precision)))]
        if chief != precision:
            precision, record = chief, dict(record, choice=chief, rule="the chief's")
            message = f"precision {chief} (the chief worker's choice)"
    return dataclasses.replace(cfg, precision=precision, precision_probe=record), message
