"""Generate a default dataset into a format-v1 slice store; no download needed.

    python -m cycle_medgan_tf.data.make_default --task=pet_ct|mr_motion|bigan_ct --size=64|128|256 \\
        --out=FILE [--subjects=48 --slices=12 --val_slices=N --pet=nac|ac --seed=0 --workers=N
        --preview=FILE.png --overwrite]

Realistic, deterministic stand-ins built from the MNI ICBM152 2009a template (see
``cycle_medgan_tf/data/synth``): per-subject anatomy (head size and shape, 3-D tilt, elastic warp, slice
heights, ventricles, skull, sinus, pathology) with skull and scalp, then FDG-PET (NAC by default, or AC) and
CT (``pet_ct``), motion-corrupted (mild to severe) and motion-free T1 MR (``mr_motion``), or CT of a separate
cohort for the feature extractor (``bigan_ct``). Subjects split into train A / train B / validation as
``cycle_medgan_tf.data.synth.tasks.split_subjects`` says (48 -> 20 / 20 / 8), with disjoint subjects in
each split and paired validation rows. Output is identical (same bytes) for any ``--workers``.

Python: :func:`make_default` writes a file, :func:`ensure_default` generates into the cache
(``$CYCLE_MEDGAN_CACHE``, default ``~/.cache/cycle_medgan_tf``) only when missing, :func:`default_cache_path`
says where.
"""

from __future__ import annotations

import multiprocessing
import os

import numpy as np

from cycle_medgan_tf.data.window import WindowError, parse_transfer
from cycle_medgan_tf.data.store import write_store
from cycle_medgan_tf.data.synth.anatomy import BUILD_PIXEL_MM, BUILD_SIZE
from cycle_medgan_tf.data.synth.tasks import (GENERATOR_VERSION, PET_MODES, SIZES, TASKS, cohort,
                                              generate_subject, split_subjects, store_attributes, subject_id,
                                              window_a)

MAX_SUBJECTS = 1000
MAX_SLICES = 160
_JOB_COST = {"val": 2, "A": 1, "B": 1}
QUICK = cohort("pet_ct", "quick")


class DefaultDataError(ValueError):
    """Bad arguments for default-data generation; the message is meant for the user."""


def _check(task: str, size: int, subjects: int, slices: int, seed: int, workers, pet: str = "nac",
           val_slices: int | None = None) -> None:
    if task not in TASKS:
        raise DefaultDataError(f"unknown task {task!r}; choose one of {', '.join(sorted(TASKS))}")
    if size not in SIZES:
        raise DefaultDataError(f"size must be one of {', '.join(map(str, SIZES))}, got {size}")
    if not 3 <= subjects <= MAX_SUBJECTS:
        raise DefaultDataError(f"subjects must be between 3 and {MAX_SUBJECTS}, got {subjects}")
    if not 1 <= slices <= MAX_SLICES:
        raise DefaultDataError(f"slices must be between 1 and {MAX_SLICES}, got {slices}")
    if val_slices is not None and not 1 <= val_slices <= MAX_SLICES:
        raise DefaultDataError(f"val_slices must be between 1 and {MAX_SLICES}, got {val_slices}")
    if pet not in PET_MODES:
        raise DefaultDataError(f"pet must be one of {', '.join(PET_MODES)} (non-attenuation-corrected or "
                               f"attenuation-corrected), got {pet!r}")
    if seed < 0:
        raise DefaultDataError(f"seed must be >= 0, got {seed}")
    if workers is not None and workers < 1:
        raise DefaultDataError(f"workers must be >= 1, got {workers}")


def _run_job(job: tuple) -> tuple[int, dict[str, np.ndarray]]:
    position, (task, index, role, size, slices, seed, pet) = job
    return position, generate_subject(task, index, role, size, slices, seed, pet)


def _default_workers(n_jobs: int) -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, min(cores, n_jobs))


def generate_images(task: str, size: int, subjects: int = QUICK.subjects, slices: int = QUICK.slices,
                    seed: int = 0, workers: int | None = None, pet: str = "nac",
                    val_slices: int | None = None) -> dict:
    """All images of a default dataset as keyword arguments for :func:`write_store` (no file written)."""
    _check(task, size, subjects, slices, seed, workers, pet, val_slices)
    split = split_subjects(subjects)
    per_role = {"A": slices, "B": slices, "val": val_slices or slices}
    jobs = [(task, index, role, size, per_role[role], seed, pet) for role in ("A", "B", "val")
            for index in split[role]]
    workers = workers or _default_workers(len(jobs))
    # Longest jobs first for load balance; results are put back by position, so order never matters.
    order = sorted(range(len(jobs)), key=lambda i: -_JOB_COST[jobs[i][2]])
    results: list = [None] * len(jobs)
    if workers == 1:
        for i in order:
            results[i] = _run_job((i, jobs[i]))[1]
    else:
        context = multiprocessing.get_context("spawn")
        with context.Pool(min(workers, len(jobs))) as pool:
            for i, images in pool.imap_unordered(_run_job, [(i, jobs[i]) for i in order]):
                results[i] = images
    by_role: dict[str, list] = {"A": [], "B": [], "val": []}
    for (_, index, role, *_rest), images in zip(jobs, results):
        by_role[role].append((index, images))

    def stack(role: str, domain: str):
        return np.concatenate([images[domain] for _, images in by_role[role]])

    def ids(role: str, domain: str):
        return [subject_id(task, index, seed) for index, images in by_role[role]
                for _ in range(len(images[domain]))]

    spec = TASKS[task]
    return dict(task=task, domain_a=spec.domain_a, domain_b=spec.domain_b,
                pixel_spacing_mm=BUILD_SIZE * BUILD_PIXEL_MM / size,
                train_a=stack("A", "A"), train_a_subjects=ids("A", "A"),
                train_b=stack("B", "B"), train_b_subjects=ids("B", "B"),
                val_a=stack("val", "A"), val_b=stack("val", "B"), val_subjects=ids("val", "A"),
                window_a=window_a(task, pet), window_b=spec.window_b,
                extra_attrs=store_attributes(task, seed, subjects, slices, pet, val_slices))


def make_default(task: str, size: int, out, subjects: int = QUICK.subjects, slices: int = QUICK.slices,
                 seed: int = 0, workers: int | None = None, overwrite: bool = False, pet: str = "nac",
                 val_slices: int | None = None, transfer_b: str = "") -> str:
    """Generate a default dataset and write it as a format-v1 store at ``out``; returns the path.
    ``transfer_b`` (``"VALUE:LEVEL,..."``, data/window.py) stores a piecewise-linear transfer on domain B's window."""
    out = os.fspath(out)
    _check(task, size, subjects, slices, seed, workers, pet, val_slices)
    try:
        window_b = parse_transfer(transfer_b, TASKS[task].window_b)
    except WindowError as exc:
        raise DefaultDataError(f"--transfer_b: {exc}") from exc
    if os.path.isdir(out):
        raise DefaultDataError(f"{out} is a directory; --out must be a file path")
    if os.path.exists(out) and not overwrite:
        raise DefaultDataError(f"{out} already exists (use --overwrite to replace it)")
    arrays = generate_images(task, size, subjects, slices, seed, workers, pet, val_slices)
    return write_store(out, overwrite=overwrite, **dict(arrays, window_b=window_b))


def cache_dir() -> str:
    """Directory for cached default datasets: ``$CYCLE_MEDGAN_CACHE`` or ``~/.cache/cycle_medgan_tf``."""
    return os.path.expanduser(os.environ.get("CYCLE_MEDGAN_CACHE") or "~/.cache/cycle_medgan_tf")


def default_cache_path(task: str, size: int, seed: int = 0, subjects: int = QUICK.subjects,
                       slices: int = QUICK.slices, pet: str = "nac", val_slices: int | None = None,
                       transfer_b: str = "") -> str:
    """Where :func:`ensure_default` keeps the dataset with these settings (the generator version is part
    of the name, so a changed generator never reuses stale files; a transfer of domain B is named by its knots)."""
    _check(task, size, subjects, slices, seed, None, pet, val_slices)
    val = f"_val{val_slices}" if val_slices else ""
    mode = f"_{pet}" if task == "pet_ct" else ""
    transfer = "_transfer" + transfer_b.replace(":", "_").replace(",", "+") if transfer_b else ""
    name = f"{task}{mode}_{size}px_{subjects}subj_{slices}sl{val}{transfer}_seed{seed}_v{GENERATOR_VERSION}.h5"
    return os.path.join(cache_dir(), "default", name)


def ensure_default(task: str, size: int, seed: int = 0, subjects: int = QUICK.subjects,
                   slices: int = QUICK.slices, workers: int | None = None, pet: str = "nac",
                   val_slices: int | None = None, transfer_b: str = "") -> str:
    """Path of the cached default dataset, generating it first if it is not there yet."""
    path = default_cache_path(task, size, seed, subjects, slices, pet, val_slices, transfer_b)
    if not os.path.exists(path):
        # Deterministic content: a concurrent writer produces the same bytes, so replacing is harmless.
        make_default(task, size, path, subjects, slices, seed, workers, overwrite=True, pet=pet,
                     val_slices=val_slices, transfer_b=transfer_b)
    return path


if __name__ == "__main__":       # the command: cycle_medgan_tf/commands/make_default.py
    from cycle_medgan_tf.commands.make_default import run
    run()
