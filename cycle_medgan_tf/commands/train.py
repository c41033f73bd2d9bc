"""Train a translator: ``python -m cycle_medgan_tf.train --model=cyclegan|cycle_medgan|unit --data=FILE
--workdir=DIR --profile=smoke|quick|paper [--steps --epochs --batch_size --image_size --lambda_* ...]
[--strategy=default|mirrored|multi_worker --cpu_devices=N]`` (distributed training: docs/DISTRIBUTED.md).

Running the same command again resumes from the last checkpoint; exits 130/143 after saving a checkpoint on
SIGINT/SIGTERM, 2 on bad input, 3 on a non-finite loss, 1 when a multi-worker run loses a worker.
"""

from __future__ import annotations

import json
import sys

from absl import flags

from cycle_medgan_tf import catalogue
from cycle_medgan_tf.cli import FLAGS, config_from_flags, define_training_flags, fail, run_app
from cycle_medgan_tf.config import MODELS


def define_flags(models: tuple[str, ...] = MODELS, default_model: str = "cycle_medgan") -> None:
    """The training flags of ``models`` (``cli.define_training_flags``) and the run-control flags."""
    define_training_flags(models, default_model)
    flags.DEFINE_bool("deterministic", False, "Enable TensorFlow op determinism (bitwise-reproducible runs and "
                      "resumes).")
    flags.DEFINE_integer("max_steps_this_run", None, "Stop (with a checkpoint) after this many new steps; the same "
                         "command continues later. For time-limited or preemptible machines.", lower_bound=1)


def train_cli() -> None:
    """Shared body of the train and pretrain_bigan commands (the model is ``--model``; pretrain_bigan's only
    choice is bigan)."""
    from absl import logging

    from cycle_medgan_tf.data.store import StoreError, check_store

    logging.set_verbosity(logging.WARNING)
    cfg = config_from_flags()
    from cycle_medgan_tf.training.distribute import Distribution, DistributionError, make_strategy
    try:   # before any other TensorFlow work: logical CPU devices and MultiWorkerMirroredStrategy need that
        dist = Distribution(make_strategy(cfg.strategy, cfg.cpu_devices))
        dist.check(cfg.batch_size, cfg.jit)
    except DistributionError as exc:
        fail(str(exc))
    import tensorflow as tf
    if FLAGS.deterministic:
        tf.config.experimental.enable_op_determinism()
    try:
        data = check_store(cfg.data)            # the run's one validation of its store, handed down
    except StoreError as exc:
        fail(str(exc))

    from cycle_medgan_tf.models.pretrained import WeightsError
    from cycle_medgan_tf.training.trainer import TrainingError, run_training

    try:
        summary = run_training(catalogue.trainer_class(cfg.model), cfg, overwrite=FLAGS.overwrite,
                               log=lambda m: print(m, file=sys.stderr, flush=True),
                               max_new_steps=FLAGS.max_steps_this_run, dist=dist, data=data)
    except (TrainingError, WeightsError, ValueError) as exc:
        fail(str(exc), code=3 if "non-finite" in str(exc) else 2)
    except (tf.errors.UnavailableError, tf.errors.CancelledError, tf.errors.AbortedError,
            tf.errors.DeadlineExceededError) as exc:     # a collective failed: a peer died or is unreachable
        if dist.num_workers == 1:
            raise
        reason = next((line.strip() for line in str(exc).splitlines() if "abort" in line or "connect" in line),
                      str(exc).strip().split("\n")[0])
        fail(f"lost contact with another worker ({type(exc).__name__}: {reason[:200]}); checkpoints are kept: start "
             "every worker again with the same command to resume", code=1)
    if summary["status"] == "interrupted":
        sys.exit(130 if summary["signal"] == "SIGINT" else 143)
    print(json.dumps(summary))


def main(argv):
    train_cli()


def run() -> None:
    define_flags()
    run_app(main)


if __name__ == "__main__":
    run()
