"""The main job behind ``./run.sh pet_ct`` and ``./run.sh mr_motion``.

    python -m cycle_medgan_tf.main_job --task=pet_ct|mr_motion [--profile=auto|smoke|quick|paper]
        [--results=results --models=unit,cyclegan,cycle_medgan --steps --image_size --subjects --slices --overwrite]

Stages: default data (generated once into the cache), training of each model (resumed or skipped when already
done), evaluation on the paired validation set (Table I and Fig. 3). Writes ``RESULTS/TASK/`` with the Table I
files, ``fig3.png``, ``runs/MODEL/`` and ``summary.json`` (wall time per stage). Without a GPU the ``quick``
profile is used; with one, ``paper``.
"""

from __future__ import annotations

import json
import os
import sys
import time

from absl import flags

from cycle_medgan_tf.atomic import atomic_write_text
from cycle_medgan_tf.cli import fail, run_app

MODEL_ORDER = ("unit", "cyclegan", "cycle_medgan")
TASKS = ("pet_ct", "mr_motion")
QUICK_MINUTES = 30

FLAGS = flags.FLAGS


def define_flags() -> None:
    flags.DEFINE_enum("task", "pet_ct", list(TASKS), "Which translation task.")
    flags.DEFINE_enum("profile", "auto", ["auto", "smoke", "quick", "paper"],
                      "auto = paper with a GPU, quick without.")
    flags.DEFINE_string("results", "results", "Results root; the job writes RESULTS/TASK/.")
    flags.DEFINE_list("models", list(MODEL_ORDER), "Models to train and compare.")
    flags.DEFINE_integer("steps", None, "Override the profile's training steps for every model.", lower_bound=1)
    flags.DEFINE_integer("image_size", None, "Override the profile's image size (64, 128 or 256).")
    flags.DEFINE_integer("subjects", None, "Default-data subjects (default per profile).", lower_bound=3)
    flags.DEFINE_integer("slices", None, "Default-data slices per subject (default per profile).", lower_bound=1)
    flags.DEFINE_string("data", None, "Use this store instead of the default data.")
    flags.DEFINE_enum("pet", "nac", ["nac", "ac"], "pet_ct default data: non-attenuation-corrected PET (nac, the "
                      "input of PET->CT synthesis for attenuation correction) or attenuation-corrected (ac).")
    flags.DEFINE_bool("overwrite", False, "Start the runs afresh when their configuration changed.")


def choose_profile(requested: str) -> str:
    """``auto`` becomes ``paper`` when TensorFlow sees a GPU, else ``quick``."""
    if requested != "auto":
        return requested
    import tensorflow as tf
    return "paper" if tf.config.list_physical_devices("GPU") else "quick"


def user_errors() -> tuple:
    """Exception types whose message is a complete, user-facing explanation (shown as one line, exit 2)."""
    from cycle_medgan_tf.data.make_default import DefaultDataError
    from cycle_medgan_tf.evaluate import EvaluationError
    from cycle_medgan_tf.models.pretrained import WeightsError
    from cycle_medgan_tf.training.trainer import TrainingError

    return (TrainingError, EvaluationError, WeightsError, DefaultDataError, ValueError)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_job(task: str, profile: str, results: str, models, steps=None, image_size=None, subjects=None, slices=None,
            data=None, overwrite=False, pet="nac") -> dict:
    """Run every stage; returns the summary written to ``summary.json``."""
    from cycle_medgan_tf.config import resolve_config
    from cycle_medgan_tf.data.make_default import ensure_default
    from cycle_medgan_tf.data.synth.tasks import cohort
    from cycle_medgan_tf.evaluate import evaluate
    from cycle_medgan_tf.train import trainer_class
    from cycle_medgan_tf.training.trainer import run_training

    out = os.path.abspath(os.path.join(results, task))
    os.makedirs(out, exist_ok=True)
    overrides = {k: v for k, v in dict(steps=steps, image_size=image_size).items() if v is not None}
    configs = {m: resolve_config(m, profile, overrides) for m in models}
    size = configs[models[0]].image_size
    summary = dict(task=task, profile=profile, image_size=size, models=list(models), stages={}, results_dir=out)
    t_job = time.monotonic()
    if profile == "quick":
        _log(f"[job] CPU quick profile: {size}x{size}, {configs[models[0]].steps} steps per model; "
             f"the whole job takes about {QUICK_MINUTES} minutes on 2 cores (re-running reuses finished stages)")
    else:
        _log(f"[job] profile {profile}: {size}x{size}")

    t = time.monotonic()
    if data is None:
        group = cohort(task, profile)    # the smoke profile uses a tiny cohort so the test suite stays fast
        settings = dict(subjects=subjects or group.subjects, slices=slices or group.slices,
                        val_slices=None if slices else group.val_slices)
        _log(f"[job] default {task} data at {size}x{size} ({settings['subjects']} subjects x {settings['slices']} slices)")
        data = ensure_default(task, size, pet=pet, **settings)
    summary["data"] = data
    summary["stages"]["data_s"] = round(time.monotonic() - t, 2)

    runs = {}
    for model in models:
        t = time.monotonic()
        cfg = configs[model]
        cfg.data, cfg.workdir = data, os.path.join(out, "runs", model)
        result = run_training(trainer_class(model), cfg, overwrite=overwrite, log=_log)
        if result["status"] != "completed":
            raise KeyboardInterrupt(f"{model} training {result['status']} at step {result['step']}")
        runs[model] = cfg.workdir
        summary["stages"][f"train_{model}_s"] = round(time.monotonic() - t, 2)
        summary["stages"][f"train_{model}_steps_run"] = result["step"] - result["start_step"]

    t = time.monotonic()
    _log(f"[job] evaluating {', '.join(models)} on the paired validation set")
    table = evaluate(data, runs, out, identity=True, overwrite=True)
    summary["stages"]["evaluate_s"] = round(time.monotonic() - t, 2)
    summary["wall_time_s"] = round(time.monotonic() - t_job, 2)
    summary["table1"] = {name: {k: v["mean"] for k, v in row.items()} for name, row in table["models"].items()}
    atomic_write_text(os.path.join(out, "summary.json"), json.dumps(summary, indent=2))
    return summary


def main(argv):
    models = [m for m in MODEL_ORDER if m in FLAGS.models]
    unknown = sorted(set(FLAGS.models) - set(MODEL_ORDER))
    if unknown or not models:
        fail(f"--models takes any of {', '.join(MODEL_ORDER)}, got {','.join(FLAGS.models)}")
    if FLAGS.data and not os.path.isfile(FLAGS.data):
        fail(f"--data {FLAGS.data}: file not found")
    from absl import logging

    logging.set_verbosity(logging.WARNING)
    profile = choose_profile(FLAGS.profile)
    try:
        summary = run_job(FLAGS.task, profile, FLAGS.results, models, FLAGS.steps, FLAGS.image_size, FLAGS.subjects,
                          FLAGS.slices, FLAGS.data, FLAGS.overwrite, FLAGS.pet)
    except user_errors() as exc:
        fail(str(exc))
    except KeyboardInterrupt as exc:
        fail(f"interrupted ({exc}); run the same command again to continue", code=130)
    table_md = os.path.join(summary["results_dir"], "table1.md")
    with open(table_md) as f:
        print(f.read())
    print(f"[job] done in {summary['wall_time_s'] / 60:.1f} min. Results: {summary['results_dir']} "
          f"(table1.md/.csv/.tex/.json, fig3.png, summary.json, runs/)")


if __name__ == "__main__":
    define_flags()
    run_app(main)
