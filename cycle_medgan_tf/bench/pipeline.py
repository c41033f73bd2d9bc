"""Input-pipeline throughput: ``python -m cycle_medgan_tf.bench.pipeline --data=FILE [--image_size --batch_size
--batches --streaming]`` prints one JSON line with ``slices_per_s`` (A and B slices delivered per second, after a
warm-up batch), to compare with what a training step consumes."""

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
    flags.DEFINE_string("data", None, "HDF5 slice store.")
    flags.DEFINE_integer("image_size", 0, "Training size (0 = the store's).")
    flags.DEFINE_integer("batch_size", 1, "Batch size.")
    flags.DEFINE_integer("batches", 200, "Batches to time.")
    flags.DEFINE_integer("repeats", 3, "Timed repeats (the median is reported).")
    flags.DEFINE_bool("streaming", False, "Force streaming from HDF5 instead of loading into memory.")


def main(argv):
    from cycle_medgan_tf.data.validate import validate_store

    if not FLAGS.data:
        fail("--data is required")
    problems = validate_store(FLAGS.data)
    if problems:
        fail(f"{FLAGS.data}: " + "; ".join(problems))
    if FLAGS.batch_size < 1 or FLAGS.batches < 1 or FLAGS.repeats < 1:
        fail("--batch_size, --batches and --repeats must be >= 1")
    from cycle_medgan_tf.data import pipeline
    from cycle_medgan_tf.data.store import open_store

    with open_store(FLAGS.data) as store:
        size = FLAGS.image_size or store.image_size
    limit = 0 if FLAGS.streaming else pipeline.DEFAULT_MEMORY_LIMIT
    rates = []
    for repeat in range(FLAGS.repeats):
        iterator = iter(pipeline.train_dataset(FLAGS.data, size, FLAGS.batch_size, seed=repeat,
                                               memory_limit_bytes=limit))
        next(iterator)
        start = time.perf_counter()
        for _ in range(FLAGS.batches):
            next(iterator)
        rates.append(2 * FLAGS.batch_size * FLAGS.batches / (time.perf_counter() - start))
    print(json.dumps(dict(data=os.path.basename(FLAGS.data), image_size=size, batch_size=FLAGS.batch_size,
                          streaming=FLAGS.streaming, slices_per_s=round(statistics.median(rates), 1),
                          slices_per_s_all=[round(r, 1) for r in rates])))


if __name__ == "__main__":
    define_flags()
    run_app(main)
