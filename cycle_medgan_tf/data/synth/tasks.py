"""The three default tasks: which images each subject contributes, subject splits and seeding.

* ``pet_ct``: A = "PET", non-attenuation-corrected by default (``pet="nac"``, the input PET -> CT synthesis
  sees: attenuated relative activity, window [0, 1.5]) or attenuation-corrected (``pet="ac"``: relative
  activity, white matter = 1, window [0, 6]); B = "CT" (HU, window [-1000, 2000], wide enough for air and
  cortical bone).
* ``mr_motion``: A = "MR_motion" (motion-corrupted T1), B = "MR" (motion-free T1); arbitrary units with
  white matter about 1, window [0, 1.6] for both (fat, the brightest tissue, stays below 1.5).
* ``bigan_ct``: CT of a separate cohort (its own seed stream and subject ids) for pre-training the feature
  extractor; A and B are both "CT" from disjoint subjects, and val/A = val/B.

Subjects are split into train A, train B and validation: ``n_val = max(1, round(n / 6))`` and the rest
halved (A gets the odd one): the quick cohort of 48 subjects gives 20 / 20 / 8, the paper-sized PET-CT cohort
of 46 gives 19 / 19 / 8 and the MR one of 17 gives 7 / 7 / 3 (:data:`COHORTS`). Train A and train B subjects are
disjoint (strictly unpaired) and validation subjects are separate again; a validation subject gives both
domains of the same slices (paired rows). Every subject draws from ``SeedSequence([seed, task stream,
subject index])``, so output does not depend on how subjects are spread over worker processes; subject ids
carry the seed (``petct-s0-007``), so stores made with different seeds never share an id.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cycle_medgan_tf.data.synth.anatomy import BUILD_SIZE, random_anatomy
from cycle_medgan_tf.data.synth.ct import simulate_ct
from cycle_medgan_tf.data.synth.fields import area_mean
from cycle_medgan_tf.data.synth.mr import PHASE_ENCODE_AXIS, simulate_mr_pair
from cycle_medgan_tf.data.synth.pet import simulate_pet

CT_WINDOW = (-1000.0, 2000.0)
PET_WINDOW = (0.0, 6.0)
PET_NAC_WINDOW = (0.0, 1.5)
PET_MODES = ("nac", "ac")
MR_WINDOW = (0.0, 1.6)
SIZES = (32, 64, 128, 256)
ROLES = ("A", "B", "val")
GENERATOR_VERSION = 2  # bump when generated images change, so cached files are regenerated


@dataclass(frozen=True)
class Cohort:
    """Size of a default dataset: subjects (split as :func:`split_subjects` says) and slices per subject."""

    subjects: int
    slices: int
    val_slices: int | None = None    # slices per validation subject (None: ``slices``)


# Default cohorts per profile (and task where they differ). The paper's cohorts: PET-CT 38 training subjects
# with 1,935 slices and 8 validation subjects with about 420; MR 14 training subjects with 980 slices and 3
# validation subjects with 105.
COHORTS: dict[str, dict[str, Cohort]] = {
    "smoke": {"*": Cohort(3, 2)},
    "quick": {"*": Cohort(48, 12)},
    "paper": {"pet_ct": Cohort(46, 51), "mr_motion": Cohort(17, 70, 35), "*": Cohort(46, 51)},
}


def cohort(task: str, profile: str) -> Cohort:
    """The default cohort of ``task`` under a training profile."""
    table = COHORTS[profile]
    return table.get(task, table["*"])


@dataclass(frozen=True)
class TaskSpec:
    """Names, windows and seed stream of one default task."""

    name: str
    domain_a: str
    domain_b: str
    window_a: tuple[float, float]
    window_b: tuple[float, float]
    stream: int
    subject_prefix: str


TASKS = {
    "pet_ct": TaskSpec("pet_ct", "PET", "CT", PET_WINDOW, CT_WINDOW, 1, "petct"),
    "mr_motion": TaskSpec("mr_motion", "MR_motion", "MR", MR_WINDOW, MR_WINDOW, 2, "mr"),
    "bigan_ct": TaskSpec("bigan_ct", "CT", "CT", CT_WINDOW, CT_WINDOW, 3, "ctx"),
}


def split_subjects(n_subjects: int) -> dict[str, list[int]]:
    """Subject indices per role ("A", "B", "val"); see the module docstring."""
    if n_subjects < 3:
        raise ValueError(f"need at least 3 subjects (train A, train B, validation), got {n_subjects}")
    n_val = max(1, int(round(n_subjects / 6)))
    n_train = n_subjects - n_val
    n_a = (n_train + 1) // 2
    return {"A": list(range(n_a)), "B": list(range(n_a, n_train)), "val": list(range(n_train, n_subjects))}


def subject_id(task: str, index: int, seed: int = 0) -> str:
    """Subject identifier written to the store, e.g. ``petct-s0-007``."""
    return f"{TASKS[task].subject_prefix}-s{int(seed)}-{index:03d}"


def window_a(task: str, pet: str = "nac") -> tuple[float, float]:
    """Intensity window of domain A (PET's depends on attenuation correction)."""
    if task == "pet_ct" and pet == "nac":
        return PET_NAC_WINDOW
    return TASKS[task].window_a


def _subject_generators(seed: int, task: str, index: int) -> tuple[np.random.Generator, ...]:
    """Independent generators for (anatomy, domain A, domain B) of one subject."""
    root = np.random.SeedSequence([int(seed), TASKS[task].stream, int(index)])
    return tuple(np.random.default_rng(s) for s in root.spawn(3))


def motion_severity(seed: int, task: str, index: int) -> float:
    """MR motion severity of a subject in [0, 1]: a golden-ratio sequence over subject indices with a
    seed-dependent start, so any run of consecutive subjects spreads evenly from mild to severe."""
    start = np.random.default_rng(np.random.SeedSequence([int(seed), TASKS[task].stream])).uniform()
    return float((start + index * 0.6180339887498949) % 1.0)


def generate_subject(task: str, index: int, role: str, size: int, n_slices: int,
                     seed: int, pet: str = "nac") -> dict[str, np.ndarray]:
    """Images of one subject for its role: {"A": (n, size, size)} for train A, {"B": ...} for train B and
    both for validation, float32 in the task's physical units (``pet``: "nac" or "ac" PET for pet_ct)."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose from {sorted(TASKS)}")
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size}")
    if pet not in PET_MODES:
        raise ValueError(f"pet must be one of {PET_MODES}, got {pet!r}")
    anatomy_rng, rng_a, rng_b = _subject_generators(seed, task, index)
    anatomy = random_anatomy(anatomy_rng, n_slices)
    want_a, want_b = role in ("A", "val"), role in ("B", "val")
    factor = BUILD_SIZE // size
    out = {}
    if task == "pet_ct":
        if want_a:
            out["A"] = simulate_pet(anatomy, rng_a, size, attenuation_corrected=pet == "ac")
        if want_b:
            out["B"] = area_mean(simulate_ct(anatomy, rng_b), factor)
    elif task == "mr_motion":
        corrupted, clean = simulate_mr_pair(anatomy, rng_a, size, motion_severity(seed, task, index),
                                            corrupted=want_a, clean=want_b)
        out.update({k: v for k, v in (("A", corrupted), ("B", clean)) if v is not None})
    else:
        ct = area_mean(simulate_ct(anatomy, rng_a), factor)
        out.update({k: ct for k, flag in (("A", want_a), ("B", want_b)) if flag})
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}


def store_attributes(task: str, seed: int, n_subjects: int, n_slices: int, pet: str = "nac",
                     val_slices: int | None = None) -> dict:
    """Provenance attributes written to the store alongside the format-v1 fields."""
    attrs = {"generator": "cycle_medgan_tf.data.make_default", "generator_version": GENERATOR_VERSION,
             "seed": int(seed), "n_subjects": int(n_subjects), "slices_per_subject": int(n_slices),
             "val_slices_per_subject": int(val_slices or n_slices),
             "template": "MNI ICBM152 2009a nonlinear symmetric (see assets/MNI152_NOTICE.txt)"}
    if task == "mr_motion":
        attrs["phase_encode_axis"] = PHASE_ENCODE_AXIS
    if task == "pet_ct":
        attrs["pet_attenuation_correction"] = pet
    return attrs

