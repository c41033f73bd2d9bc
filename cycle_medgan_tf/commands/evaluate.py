"""The evaluation command: ``python -m cycle_medgan_tf.evaluate --data=STORE.h5 --runs=NAME=RUN[+RUN...],...
--out=DIR [...]``; what it computes and writes: ``cycle_medgan_tf/evaluate.py``."""

from __future__ import annotations

import os

from absl import flags

from cycle_medgan_tf import catalogue
from cycle_medgan_tf.cli import run_app
from cycle_medgan_tf.evaluate import EvaluationError, evaluate, parse_runs
from cycle_medgan_tf.evaluation import report

FLAGS = flags.FLAGS


def define_flags() -> None:
    """Define the command-line flags (only when run as a program, so importing never clashes with other flags)."""
    flags.DEFINE_string("data", None, "HDF5 slice store (format v1) with the paired validation set.")
    flags.DEFINE_string("runs", "", "Comma-separated NAME=RUN_DIR[+RUN_DIR...] with NAME in "
                        f"{', '.join(catalogue.translator_names())}; several directories of one model (one per "
                        "training seed) joined by '+'.")
    flags.DEFINE_string("out", None, "Output directory for table1.* and fig3.png.")
    flags.DEFINE_string("direction", "a2b", "Translation direction: a2b (input val/A, target val/B) or b2a.")
    flags.DEFINE_integer("max_slices", None, "Evaluate at most this many validation slices (evenly spaced).")
    flags.DEFINE_bool("identity", False, "Add an 'Identity' row: the input copied as the prediction.")
    flags.DEFINE_bool("lookup", False, "Add the input-blind 'Look-up (best training slice)' row.")
    flags.DEFINE_list("degrade", [], "Add rows with the target degraded: any of blur, noise, blur+noise.")
    flags.DEFINE_integer("batch_size", 16, "Batch size for the translators and LPIPS.")
    flags.DEFINE_integer("fig_rows", 6, "At most this many example rows (one per validation subject) in fig3.png.")
    flags.DEFINE_bool("overwrite", False, "Replace existing output files.")


def main(argv: list[str]) -> int:
    """Command-line entry point (see the module docstring)."""
    if not FLAGS.data:
        raise EvaluationError("--data is required (an HDF5 slice store)")
    if not FLAGS.out:
        raise EvaluationError("--out is required (an output directory)")
    evaluate(FLAGS.data, parse_runs(FLAGS.runs), FLAGS.out, direction=FLAGS.direction, max_slices=FLAGS.max_slices,
             identity=FLAGS.identity, lookup=FLAGS.lookup, degrade=FLAGS.degrade, batch_size=FLAGS.batch_size,
             fig_rows=FLAGS.fig_rows, overwrite=FLAGS.overwrite)
    with open(os.path.join(FLAGS.out, "table1.md"), encoding="utf-8") as f:
        print(f.read(), end="")
    seeds = f" and {report.SEEDS_DIR}/" if os.path.isdir(os.path.join(FLAGS.out, report.SEEDS_DIR)) else ""
    print(f"wrote {', '.join(report.OUTPUT_FILES)}{seeds} to {FLAGS.out}")
    return 0


def run() -> None:
    define_flags()
    run_app(main, errors=(EvaluationError,))


if __name__ == "__main__":
    run()
