"""Does a model beat doing nothing? Each run against the Identity row (its input copied) on the paired validation
set of a store.

    python -m cycle_medgan_tf.bench.versus_identity --data=STORE --runs=MODEL=DIR[+DIR...][,MODEL=DIR...]

One JSON line per run directory: for every Table I and tissue metric (``evaluate.validation_metrics``), the run's
mean over the validation slices, Identity's, and the subject-level difference run - Identity with its 95%
bootstrap interval (``evaluation.stats.bootstrap_difference``; subjects resampled jointly, one training seed) and
whether it is significant. In motion correction the input is already close to its target: a model that does not
beat Identity there has made the images worse (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import json

import numpy as np
from absl import flags

from cycle_medgan_tf.cli import fail, run_app

FLAGS = flags.FLAGS


def define_flags() -> None:
    flags.DEFINE_string("data", None, "A slice store (its paired validation set is scored).")
    flags.DEFINE_string("runs", None, "MODEL=RUN_DIR[+RUN_DIR...][,MODEL=...]: runs with an a2b export.")


def versus_identity(data: str, model: str, run_dir: str) -> dict:
    """``{metric: {"run", "identity", "diff", "ci95", "significant"}}`` of one run on ``data``."""
    from cycle_medgan_tf.evaluate import IDENTITY_ROW, validation_metrics
    from cycle_medgan_tf.evaluation.stats import bootstrap_difference, subject_matrix

    values = validation_metrics(data, {model: run_dir}, identity=True)
    subjects, rows = values["subjects"], values["rows"]
    out = {}
    for key in values["columns"]:
        run, identity = (np.asarray(rows[name][key], dtype=np.float64) for name in (model, IDENTITY_ROW))
        difference = bootstrap_difference(subject_matrix([run], subjects)[0], subject_matrix([identity], subjects)[0])
        out[key] = dict(run=float(np.nanmean(run)), identity=float(np.nanmean(identity)), **difference)
    return out


def main(argv):
    del argv
    from cycle_medgan_tf.evaluation.runs import EvaluationError, required_runs

    try:
        for model, dirs in required_runs(FLAGS.data, FLAGS.runs).items():
            for run_dir in dirs:
                print(json.dumps(dict(model=model, run=run_dir, metrics=versus_identity(FLAGS.data, model, run_dir))),
                      flush=True)
    except (EvaluationError, OSError) as exc:
        fail(str(exc))


if __name__ == "__main__":
    define_flags()
    run_app(main)
