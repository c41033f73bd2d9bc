"""The fidelity study (docs/FIDELITY.md): does Cycle-MedGAN beat CycleGAN, and which of its losses does it?

    python -m cycle_medgan_tf.study --task=pet_ct|mr_motion --stage=window|ablation|final|all
        [--seeds=0,1,2 --steps=N --long_steps=N --profile=smoke|quick|paper --results=studies
         --workdir=results/study --max_runs=N --dry_run --keep_checkpoints --overwrite]
    python -m cycle_medgan_tf.study --render_only [--results=studies --out=DIR]

Every run of the plan (``study/plan.py``) without a JSON in ``--results`` is trained in ``--workdir`` (an
interrupted run resumes there), evaluated on its store's paired validation split and recorded as one small JSON
(safe to commit: no checkpoints; the run directory's checkpoints are then removed unless
--keep_checkpoints); a run whose JSON exists is skipped, even without its run directory, so a study
continues across sittings and machines from the committed JSONs. After each run the tables, curves and
``choice.json`` are re-rendered into ``--results``; ``--render_only`` renders them from the JSONs alone.
"""

from __future__ import annotations

import os
import sys

from absl import flags

from cycle_medgan_tf.cli import fail, run_app
from cycle_medgan_tf.study.plan import LONG_FACTOR, STAGES, STUDY_SEEDS, TASKS, PlanError, profile_steps
from cycle_medgan_tf.study.records import StudyError

FLAGS = flags.FLAGS


def define_flags() -> None:
    flags.DEFINE_enum("task", "pet_ct", list(TASKS), "Which translation task.")
    flags.DEFINE_enum("stage", "all", list(STAGES) + ["all"], "Which stage: window (pet_ct: the CT window), "
                      "ablation (tuning store), final (test store), or all of them in that order.")
    flags.DEFINE_list("seeds", [str(s) for s in STUDY_SEEDS], "Training seeds of every configuration.")
    flags.DEFINE_integer("steps", None, "Step budget of every run (default: the profile's).", lower_bound=1)
    flags.DEFINE_integer("long_steps", None, f"The final stage's longer budget for CycleGAN and Cycle-MedGAN "
                         f"(default: {LONG_FACTOR}x the profile's steps).", lower_bound=1)
    flags.DEFINE_enum("profile", "quick", ["smoke", "quick", "paper"], "Training profile of every run.")
    flags.DEFINE_string("results", "studies", "Where the per-run JSONs (committed) and the rendered tables go.")
    flags.DEFINE_string("workdir", os.path.join("results", "study"), "Run directories with checkpoints "
                        "(never committed).")
    flags.DEFINE_bool("render_only", False, "Only render the tables, curves and choice.json from the JSONs.")
    flags.DEFINE_string("out", None, "Render target of --render_only (default: --results).")
    flags.DEFINE_integer("max_runs", None, "Stop after this many new trainings (a sitting's chunk).", lower_bound=1)
    flags.DEFINE_bool("dry_run", False, "Print the plan (done / to do, with a time estimate) and exit.")
    flags.DEFINE_bool("keep_checkpoints", False, "Keep a run's checkpoints once its JSON is written (by default "
                      "they are removed: about 1 GB per run; the export and logs stay).")
    flags.DEFINE_bool("overwrite", False, "Replace existing JSONs (and run directories) of other runs than the "
                      "plan's.")


def _seeds(values) -> tuple[int, ...]:
    try:
        seeds = tuple(int(v) for v in values)
    except ValueError:
        fail(f"--seeds takes comma-separated non-negative integers, got {','.join(values)}")
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        fail(f"--seeds takes distinct non-negative integers, got {','.join(values)}")
    return seeds


def options_from_flags():
    from cycle_medgan_tf.study.runner import StudyOptions

    steps = FLAGS.steps or profile_steps(FLAGS.task, FLAGS.profile)
    long_steps = FLAGS.long_steps or LONG_FACTOR * profile_steps(FLAGS.task, FLAGS.profile)
    if long_steps <= steps:
        fail(f"--long_steps ({long_steps}) must be longer than --steps ({steps})")
    stages = tuple(STAGES) if FLAGS.stage == "all" else (FLAGS.stage,)
    return StudyOptions(FLAGS.task, stages, _seeds(FLAGS.seeds), steps, long_steps, FLAGS.profile,
                        os.path.abspath(FLAGS.results), os.path.abspath(FLAGS.workdir), FLAGS.max_runs,
                        FLAGS.overwrite)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _render(results: str, out: str) -> list[str]:
    from cycle_medgan_tf.study.render import render_study

    return render_study(results, out)


def _execute(options) -> dict:
    from absl import logging

    from cycle_medgan_tf.commands.main_job import user_errors
    from cycle_medgan_tf.study.execute import Executor
    from cycle_medgan_tf.study.runner import run_study

    logging.set_verbosity(logging.WARNING)
    executor = Executor(options.workdir, options.results, options.overwrite, log=_log,
                        keep_checkpoints=FLAGS.keep_checkpoints)
    try:
        return run_study(options, executor, render=lambda: _render(options.results, options.results), log=_log,
                         recorded=executor.recorded, references=executor.complete_reference)
    except user_errors() as exc:
        fail(" ".join(str(exc).split()))
    except KeyboardInterrupt as exc:
        fail(f"interrupted ({exc}); run the same command again to continue", code=130)


def main(argv) -> None:
    if FLAGS.out and not FLAGS.render_only:
        fail("--out is the render target of --render_only; normal runs render into --results")
    if FLAGS.render_only:
        for path in _render(FLAGS.results, FLAGS.out or FLAGS.results):
            print(f"wrote {path}")
        return
    options = options_from_flags()
    from cycle_medgan_tf.study.runner import describe_plan, full_plan

    if FLAGS.dry_run:
        print(describe_plan(options))
        return
    full_plan(options)          # a JSON of another run is refused here, before TensorFlow is even imported
    summary = _execute(options)
    print(f"[study] {options.task}: {len(summary['trained'])} trained, {len(summary['reused'])} reused, "
          f"{len(summary['remaining'])} remaining"
          + (f", {len(summary['busy'])} being trained by another process" if summary.get("busy") else "")
          + ("; run the same command again to continue" if summary["remaining"] else "")
          + f". Results: {options.results}")


def run() -> None:
    define_flags()
    run_app(main, errors=(StudyError, PlanError))


if __name__ == "__main__":
    run()
