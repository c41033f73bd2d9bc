"""Print the parameter counts of a model family as one line of JSON.

    python -m cycle_medgan_tf.models.summary --model=cyclegan --size=256 --channels=1

Output: {"model": NAME, "parts": {PART: n_params, ...}, "total": n}. For cycle_medgan the
frozen BiGAN feature extractor is listed as "feature_extractor (frozen)". Bad flag values
print one line on stderr and exit with status 2.
"""

import json
import os

from absl import flags

from cycle_medgan_tf.cli import fail, run_app

MODEL_NAMES = ("cyclegan", "cycle_medgan", "bigan", "unit")  # mirrors registry.MODEL_NAMES
MIN_SIZE = 8
EXTRACTOR_PART = "feature_extractor (frozen)"

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, f"Model family: one of {', '.join(MODEL_NAMES)}.")
flags.DEFINE_integer("size", 256, "Image side in pixels (a multiple of 4; bigan: a power of 2 >= 32).")
flags.DEFINE_integer("channels", 1, "Image channels (bigan: 1).")


def flag_problem(model, size, channels):
    """A one-line description of what is wrong with the flag values, or None if they are valid."""
    if model is None:
        return f"--model is required: one of {', '.join(MODEL_NAMES)}"
    if model not in MODEL_NAMES:
        return f"--model={model} is not one of {', '.join(MODEL_NAMES)}"
    if channels < 1:
        return f"--channels={channels} must be at least 1"
    if size < MIN_SIZE or size % 4:
        return f"--size={size} must be a multiple of 4 and at least {MIN_SIZE}"
    if model == "bigan":
        if size < 32 or size & (size - 1):
            return f"--size={size}: the BiGAN needs a power of 2 >= 32"
        if channels != 1:
            return f"--channels={channels}: the BiGAN is 1-channel"
    return None


def parameter_summary(model, size, channels):
    """{"model": ..., "parts": {part: n_params}, "total": n} for the given model family."""
    from cycle_medgan_tf.models.bigan import build_feature_extractor
    from cycle_medgan_tf.models.registry import build_models, count_params

    parts = {part: count_params(net) for part, net in build_models(model, size, channels).items()}
    if model == "cycle_medgan":
        parts[EXTRACTOR_PART] = count_params(build_feature_extractor(image_size=size))
    return {"model": model, "parts": parts, "total": sum(parts.values())}


def main(argv):
    del argv
    problem = flag_problem(FLAGS.model, FLAGS.size, FLAGS.channels)
    if problem:
        fail(problem)
    print(json.dumps(parameter_summary(FLAGS.model, FLAGS.size, FLAGS.channels)))


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    run_app(main)
