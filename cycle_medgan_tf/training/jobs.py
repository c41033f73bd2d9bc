"""Pieces shared by the jobs that train many runs (the main job, the fidelity study): the cached default stores
and one training run to its budget."""

from __future__ import annotations

import sys

from cycle_medgan_tf import catalogue

TUNING_SEED = 1          # generator seed of the default tuning store (its subjects differ from seed 0's)


def log_line(message: str) -> None:
    """A job's progress line, on stderr."""
    print(message, file=sys.stderr, flush=True)


def default_data(task: str, profile: str, size: int, subjects=None, slices=None, pet: str = "nac", seed: int = 0,
                 transfer_b: str = "", log=log_line, create: bool = True) -> str:
    """The cached default store of the profile's cohort (``seed`` 1 and up: a tuning store of other subjects;
    ``transfer_b``: domain B's piecewise-linear transfer, data/window.py); ``create=False``: only its path."""
    from cycle_medgan_tf.data.make_default import default_cache_path, ensure_default
    from cycle_medgan_tf.data.synth.tasks import cohort

    group = cohort(task, profile)    # the smoke profile uses a tiny cohort so the test suite stays fast
    settings = dict(subjects=subjects or group.subjects, slices=slices or group.slices,
                    val_slices=None if slices else group.val_slices)
    if not create:
        return default_cache_path(task, size, seed=seed, pet=pet, transfer_b=transfer_b, **settings)
    log(f"[job] default {task} data at {size}x{size} ({settings['subjects']} subjects x {settings['slices']} slices"
        f"{', seed ' + str(seed) if seed else ''}{', transfer ' + transfer_b if transfer_b else ''})")
    return ensure_default(task, size, seed=seed, pet=pet, transfer_b=transfer_b, **settings)



def train_run(model: str, profile: str, overrides: dict, checked=None, overwrite: bool = False, log=log_line):
    """Train (or resume, or reuse) one run to its budget with ``training.trainer.run_training``: returns
    ``(config, result)``; a run that stopped early (signal) raises KeyboardInterrupt naming where it stopped."""
    from cycle_medgan_tf.config import resolve_config
    from cycle_medgan_tf.training.trainer import run_training

    cfg = resolve_config(model, profile, overrides)
    result = run_training(catalogue.trainer_class(model), cfg, overwrite=overwrite, log=log, data=checked)
    if result["status"] != "completed":
        raise KeyboardInterrupt(f"{model} seed {cfg.seed} training {result['status']} at step {result['step']}")
    return cfg, result
