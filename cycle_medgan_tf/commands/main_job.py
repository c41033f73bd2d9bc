"""The main job behind ``./run.sh pet_ct`` and ``./run.sh mr_motion``.

    python -m cycle_medgan_tf.main_job --task=pet_ct|mr_motion [--profile=auto|smoke|quick|paper]
        [--results=results --models=unit,cyclegan,cycle_medgan --seeds=0,1,2 --steps --image_size --subjects
         --slices --pet=nac|ac --tuning_data=FILE|none --overwrite]

Stages: default data (generated once into the cache), training of each model once per seed (resumed or skipped
when already done), evaluation on the paired validation set (Table I with the Identity and Look-up reference
rows, and Fig. 3). Writes ``RESULTS/TASK/`` with the headline Table I files (mean over seeds, spread across seeds,
subject-level comparisons), ``details.md``, ``fig3.png``, ``seeds/seed_K/`` (per-seed tables and figure),
``runs/MODEL/seed_K/``, ``curves.png`` (learning curves on a tuning store of other subjects: the default data
with generator seed 1) and ``summary.json`` (wall time per stage). Without a GPU the ``quick`` profile is used;
with one, ``paper``. The default seeds per profile are ``config.DEFAULT_SEEDS``.
"""

from __future__ import annotations

import json
import os
import time

from absl import flags

from cycle_medgan_tf import catalogue
from cycle_medgan_tf.atomic import atomic_write_text
from cycle_medgan_tf.cli import fail, run_app
from cycle_medgan_tf.training.jobs import TUNING_SEED, default_data, train_run  # noqa: F401 (re-exported)
from cycle_medgan_tf.training.jobs import log_line as _log

MODEL_ORDER = catalogue.translator_names()      # Table I order
TASKS = ("pet_ct", "mr_motion")
QUICK_MINUTES = "25-45"    # one seed of the three models on 2 cores, depending on the CPU (README, Results)

FLAGS = flags.FLAGS


def define_flags() -> None:
    flags.DEFINE_enum("task", "pet_ct", list(TASKS), "Which translation task.")
    flags.DEFINE_enum("profile", "auto", ["auto", "smoke", "quick", "paper"],
                      "auto = paper with a GPU, quick without.")
    flags.DEFINE_string("results", "results", "Results root; the job writes RESULTS/TASK/.")
    flags.DEFINE_list("models", list(MODEL_ORDER), "Models to train and compare.")
    define_seeds_flag()
    flags.DEFINE_integer("steps", None, "Override the profile's training steps for every model.", lower_bound=1)
    flags.DEFINE_integer("image_size", None, "Override the profile's image size (64, 128 or 256).")
    flags.DEFINE_integer("subjects", None, "Default-data subjects (default per profile).", lower_bound=3)
    flags.DEFINE_integer("slices", None, "Default-data slices per subject (default per profile).", lower_bound=1)
    flags.DEFINE_string("data", None, "Use this store instead of the default data.")
    flags.DEFINE_string("tuning_data", None, "Tuning store for the learning curves (other subjects than the data: "
                        "never the store Table I reports on). Default: the default data generated with seed "
                        f"{TUNING_SEED} when --data is not given, else none; 'none' turns the curves off.")
    flags.DEFINE_enum("pet", "nac", ["nac", "ac"], "pet_ct default data: non-attenuation-corrected PET (nac, the "
                      "input of PET->CT synthesis for attenuation correction) or attenuation-corrected (ac).")
    flags.DEFINE_bool("overwrite", False, "Start the runs afresh when their configuration changed.")


def define_seeds_flag() -> None:
    flags.DEFINE_list("seeds", None, "Training seeds, e.g. 0,1,2: every model is trained once per seed "
                      "(default per profile: config.DEFAULT_SEEDS).")


def parse_seeds(values, profile: str) -> list[int]:
    """``--seeds`` as distinct non-negative integers in the given order (the profile's default when unset)."""
    from cycle_medgan_tf.config import DEFAULT_SEEDS

    if values is None:
        return list(DEFAULT_SEEDS[profile])
    try:
        seeds = [int(v) for v in values]
    except ValueError:
        fail(f"--seeds takes comma-separated non-negative integers, got {','.join(values)}")
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        fail(f"--seeds takes distinct non-negative integers, got {','.join(values)}")
    return seeds


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


def run_job(task: str, profile: str, results: str, models, steps=None, image_size=None, subjects=None, slices=None,
            data=None, overwrite=False, seeds=None, pet="nac", tuning_data=None) -> dict:
    """Run every stage; returns the summary written to ``summary.json``."""
    from cycle_medgan_tf.config import DEFAULT_SEEDS, resolve_config
    from cycle_medgan_tf.evaluate import evaluate

    seeds = list(DEFAULT_SEEDS[profile] if seeds is None else seeds)
    out = os.path.abspath(os.path.join(results, task))
    os.makedirs(out, exist_ok=True)
    overrides = {k: v for k, v in dict(steps=steps, image_size=image_size).items() if v is not None}
    first = resolve_config(models[0], profile, overrides)
    size = first.image_size
    summary = dict(task=task, profile=profile, image_size=size, models=list(models), seeds=seeds, stages={},
                   results_dir=out)
    t_job = time.monotonic()
    if profile == "quick":
        _log(f"[job] CPU quick profile: {size}x{size}, {first.steps} steps per model and seed, "
             f"seeds {','.join(map(str, seeds))}; one seed takes about {QUICK_MINUTES} minutes on 2 cores "
             "(re-running reuses finished stages)")
    else:
        _log(f"[job] profile {profile}: {size}x{size}, seeds {','.join(map(str, seeds))}")

    t = time.monotonic()
    summary["data"] = data if data is not None else default_data(task, profile, size, subjects, slices, pet)
    if tuning_data is None and data is None:
        tuning_data = default_data(task, profile, size, subjects, slices, pet, seed=TUNING_SEED)
    summary["tuning_data"] = "" if tuning_data in (None, "none") else os.path.abspath(tuning_data)
    summary["stages"]["data_s"] = round(time.monotonic() - t, 2)
    overrides.update(data=summary["data"], curve_data=summary["tuning_data"])
    runs = _train_all(task, models, profile, overrides, seeds, out, overwrite, summary["stages"])
    if summary["tuning_data"]:
        summary["curves"] = _render_curves(out, task, runs, summary["tuning_data"], first)

    t = time.monotonic()
    _log(f"[job] evaluating {', '.join(models)} ({len(seeds)} seed(s)) on the paired validation set")
    table = evaluate(summary["data"], runs, out, identity=True, lookup=True, overwrite=True)
    summary["stages"]["evaluate_s"] = round(time.monotonic() - t, 2)
    summary["wall_time_s"] = round(time.monotonic() - t_job, 2)
    summary["table1"] = {name: {k: v["mean"] for k, v in row.items()} for name, row in table["models"].items()}
    atomic_write_text(os.path.join(out, "summary.json"), json.dumps(summary, indent=2))
    return summary


def _render_curves(out: str, task: str, runs: dict, tuning_data: str, cfg) -> str:
    """``OUT/curves.png``: the learning curves of every run on the tuning subset, with its Identity score."""
    from cycle_medgan_tf.evaluation.curves import render_curves
    from cycle_medgan_tf.training.curves import identity_scores

    references = {"Identity": identity_scores(tuning_data, cfg.curve_slices, cfg.image_size)}
    path = os.path.join(out, "curves.png")
    render_curves(path, runs, references=references, overwrite=True,
                  title=f"{task}: learning curves on {cfg.curve_slices} slices of the tuning store")
    return path


def run_dir(out: str, model: str, seed: int) -> str:
    """Where the job trains ``model`` with ``seed``: ``OUT/runs/MODEL/seed_K``."""
    return os.path.join(out, "runs", model, f"seed_{seed}")


def _train_all(task: str, models, profile: str, overrides: dict, seeds, out: str, overwrite: bool,
               stages: dict) -> dict[str, list[str]]:
    """Train every model once per seed (finished runs are reused), with the settings its family chose for
    ``task`` (``catalogue.task_defaults``); returns ``{model: [run dir per seed]}``."""
    from cycle_medgan_tf.data.store import check_store

    checked, runs = check_store(overrides["data"]), {}      # validated once for all the job's trainings
    for model in models:
        chosen = catalogue.task_defaults(model, task)
        note = f" ({task} settings: {', '.join(f'{k}={v:g}' for k, v in chosen.items())})" if chosen else ""
        for seed in seeds:
            t = time.monotonic()
            _log(f"[job] {model} seed {seed}{note}")
            cfg, result = train_run(model, profile, dict(chosen, **overrides, workdir=run_dir(out, model, seed),
                                                         seed=seed), checked, overwrite)
            runs.setdefault(model, []).append(cfg.workdir)
            stages[f"train_{model}_seed{seed}_s"] = round(time.monotonic() - t, 2)
            stages[f"train_{model}_seed{seed}_steps_run"] = result["step"] - result["start_step"]
    return runs


def main(argv):
    models = [m for m in MODEL_ORDER if m in FLAGS.models]
    unknown = sorted(set(FLAGS.models) - set(MODEL_ORDER))
    if unknown or not models:
        fail(f"--models takes any of {', '.join(MODEL_ORDER)}, got {','.join(FLAGS.models)}")
    if FLAGS.data and not os.path.isfile(FLAGS.data):
        fail(f"--data {FLAGS.data}: file not found")
    if FLAGS.tuning_data not in (None, "none") and not os.path.isfile(FLAGS.tuning_data):
        fail(f"--tuning_data {FLAGS.tuning_data}: file not found")
    from absl import logging

    logging.set_verbosity(logging.WARNING)
    profile = choose_profile(FLAGS.profile)
    seeds = parse_seeds(FLAGS.seeds, profile)
    try:
        summary = run_job(FLAGS.task, profile, FLAGS.results, models, FLAGS.steps, FLAGS.image_size, FLAGS.subjects,
                          FLAGS.slices, FLAGS.data, FLAGS.overwrite, seeds=seeds, pet=FLAGS.pet,
                          tuning_data=FLAGS.tuning_data)
    except user_errors() as exc:
        fail(str(exc))
    except KeyboardInterrupt as exc:
        fail(f"interrupted ({exc}); run the same command again to continue", code=130)
    table_md = os.path.join(summary["results_dir"], "table1.md")
    with open(table_md) as f:
        print(f.read())
    print(f"[job] done in {summary['wall_time_s'] / 60:.1f} min. Results: {summary['results_dir']} "
          f"(table1.md/.csv/.tex/.json, details.md, fig3.png, curves.png, seeds/, summary.json, runs/)")


def run() -> None:
    define_flags()
    run_app(main)


if __name__ == "__main__":
    run()
