"""Print the parameter counts of a model family as one line of JSON.

    python -m cycle_medgan_tf.models.summary --model=cyclegan --size=256 --channels=1

Output: {"model": NAME, "parts": {PART: n_params, ...}, "total": n}. For cycle_medgan the
frozen BiGAN feature extractor is listed as "feature_extractor (frozen)". Bad flag values
print one line on stderr and exit with status 2.
"""

import json
import os

from absl import flags

from cycle_medgan_tf import catalogue
from cycle_medgan_tf.cli import fail, run_app

MIN_SIZE = 8

FLAGS = flags.FLAGS


def define_flags() -> None:
    flags.DEFINE_string("model", None, f"Model family: one of {', '.join(catalogue.names())}.")
    flags.DEFINE_integer("size", 256, "Image side in pixels (a multiple of 4; bigan: a power of 2 >= 32).")
    flags.DEFINE_integer("channels", 1, "Image channels (bigan: 1).")


def flag_problem(model, size, channels):
    """A one-line description of what is wrong with the flag values, or None if they are valid (a family's own
    limits, e.g. the BiGAN's power-of-2 size, are its network builder's ``ValueError``)."""
    if model is None:
        return f"--model is required: one of {', '.join(catalogue.names())}"
    if model not in catalogue.names():
        return f"--model={model} is not one of {', '.join(catalogue.names())}"
    if channels < 1:
        return f"--channels={channels} must be at least 1"
    if size < MIN_SIZE or size % 4:
        return f"--size={size} must be a multiple of 4 and at least {MIN_SIZE}"
    return None


def main(argv):
    del argv
    problem = flag_problem(FLAGS.model, FLAGS.size, FLAGS.channels)
    if problem:
        fail(problem)
    from cycle_medgan_tf.models.registry import parameter_summary

    try:
        summary = parameter_summary(FLAGS.model, FLAGS.size, FLAGS.channels)
    except ValueError as exc:
        fail(f"--model={FLAGS.model} --size={FLAGS.size} --channels={FLAGS.channels}: {exc}")
    print(json.dumps(summary))


def run() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    define_flags()
    run_app(main)


if __name__ == "__main__":
    run()
