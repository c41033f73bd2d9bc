"""Prepare a format-v1 slice store from real NIfTI / DICOM volumes.

    python -m cycle_medgan_tf.data.prepare --task=pet_ct --domain_a=PET --domain_b=CT \\
        --train_a=pet_train.txt --train_b=ct_train.txt --val_pairs=val_pairs.txt --out=pet_ct.h5

LIST flags take a list file, comma-separated paths, a folder of volumes or a glob (see
:mod:`cycle_medgan_tf.data.inputs`); ``--val_pairs`` lines are ``pathA,pathB`` (co-registered volumes of one
subject), inline ``a1,b1,a2,b2,...`` or two folders ``DIR_A,DIR_B`` paired by subject.

``--normalise_a`` / ``--normalise_b`` (none, suv, percentile[:P], zscore; see
:mod:`cycle_medgan_tf.data.normalise`) are applied to every volume of the domain as read and recorded in the
store; the windows are then in normalised units. Non-finite voxels are refused unless ``--fill_nonfinite``.

Every volume is resampled through its affine onto a canonical (RAS+) grid with isotropic ``--spacing_mm``
voxels; its axial slices, in radiological display orientation, are centre-cropped or padded (with the domain's
background) to ``--size`` pixels. Validation B volumes are resampled onto their A partner's grid, so row i
of val/A and val/B shows the same anatomy. Slices whose foreground fraction (pixels above the volume's
background plus 5 % of the window's width) is below ``--min_foreground`` are dropped. Subject ids are file
names without .nii/.nii.gz, or DICOM directory names; train A, train B and validation must not share a subject
by name key, DICOM PatientID / StudyInstanceUID or content (see :mod:`cycle_medgan_tf.data.identity`).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from cycle_medgan_tf.data import identity, volumes
from cycle_medgan_tf.data.identity import subject_id  # noqa: F401  (part of this module's interface)
from cycle_medgan_tf.data.inputs import PrepareError, read_pair_list, read_path_list  # noqa: F401  (interface)
from cycle_medgan_tf.data.normalise import NONE, LoadedVolume, Normalisation, normalise_volume, parse_normalisation
from cycle_medgan_tf.data.store import write_store

FOREGROUND_LEVEL = 0.05         # a pixel is foreground above its volume's background + FOREGROUND_LEVEL * width
CT_WINDOW = (-1000.0, 2000.0)
ROBUST_PERCENTILE = {"PET": 99.9, "MR": 99.5}
MIN_VAL_COVERAGE = 0.9          # share of a val A grid that must lie inside its B partner's field of view
MAX_PERCENTILE_SAMPLES = 4_000_000
SHARED_HINT = "training must stay unpaired and validation separate (use --allow_shared_subjects to accept this)"


@dataclass
class Source:
    """One input volume: path, subject id and header geometry."""

    path: str
    subject: str
    geometry: volumes.Geometry


def parse_window(value: str, flag: str) -> tuple[float, float] | None:
    """``"lo,hi"`` to (lo, hi); empty means None (use the modality's default)."""
    if not value.strip():
        return None
    try:
        lo, hi = (float(v) for v in value.split(","))
    except ValueError:
        raise PrepareError(f"--{flag}: expected lo,hi (two numbers), got {value!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise PrepareError(f"--{flag}: needs finite lo < hi, got {value!r}")
    return lo, hi


def _sources(paths: Sequence[str], label: str, kind: str | None) -> list[Source]:
    sources, seen = [], {}
    for path in paths:
        geometry = volumes.read_geometry(path)
        subject = subject_id(path)
        if subject in seen:
            raise PrepareError(f"{label}: subject id {subject!r} occurs twice ({seen[subject]}, {path}); ids are "
                               f"file or directory names, so name each input after its subject")
        seen[subject] = path
        actual = volumes.modality_kind(geometry.modality) if geometry.modality else None
        if kind and actual and actual != kind:
            raise PrepareError(f"{label}: {path} is a {geometry.modality} series but the domain is {kind}")
        sources.append(Source(os.fspath(path), subject, geometry))
    return sources


def _iso_grid(geometry: volumes.Geometry, spacing_mm: float):
    return volumes.resampled_grid(*volumes.canonical_geometry(geometry.shape, geometry.affine), spacing_mm)


def _check_val_pair(a: Source, b: Source, spacing_mm: float) -> None:
    coverage = volumes.grid_coverage(*_iso_grid(a.geometry, spacing_mm), b.geometry)
    if coverage < MIN_VAL_COVERAGE:
        raise PrepareError(f"val pair {a.path} / {b.path}: geometry does not match (only {coverage:.0%} of A's "
                           f"field of view lies inside B's); val pairs must be co-registered in one world space")


def _slices(loaded: LoadedVolume, grid, size: int) -> np.ndarray:
    resampled = volumes.resample_to_grid(loaded.volume, *grid, cval=loaded.background)
    return volumes.center_crop_pad(volumes.axial_slices(resampled), size, loaded.background)


def foreground_fraction(slices: np.ndarray, window: Sequence[float], floor: float | None = None) -> np.ndarray:
    """Per slice, the fraction of pixels above ``floor + FOREGROUND_LEVEL * (hi - lo)``; ``floor`` is the
    volume's background (default: the window's low end)."""
    level = (window[0] if floor is None else floor) + FOREGROUND_LEVEL * (window[1] - window[0])
    return np.mean(np.asarray(slices) > level, axis=(-2, -1))


@dataclass
class Domain:
    """One side of the task: letter "A"/"B", name, the window flag's value and the normalisation."""

    letter: str
    name: str
    window: tuple[float, float] | None
    normalisation: Normalisation = NONE

    @property
    def kind(self) -> str | None:
        return volumes.modality_kind(self.name)

    @property
    def flag(self) -> str:
        return f"window_{self.letter.lower()}"

    def check_rules(self) -> None:
        """Refuse a domain without a window rule, or whose normalisation does not fit its modality."""
        self.normalisation.check_modality(self.kind, self.name, f"normalise_{self.letter.lower()}")
        if self.window is None and self.kind not in ("CT", *ROBUST_PERCENTILE):
            raise PrepareError(f"no default intensity window for domain {self.name!r} (not CT, PET or MR); "
                               f"pass --{self.flag}=lo,hi")


@dataclass
class DomainSlices:
    """A domain's training slices per volume, each volume's background (normalised units) and fingerprint."""

    slices: list = field(default_factory=list)
    backgrounds: list = field(default_factory=list)
    fingerprints: list = field(default_factory=list)


def default_window(domain: Domain, train_slices: Sequence[np.ndarray],
                   backgrounds: Sequence[float] | None = None) -> tuple[float, float]:
    """CT [-1000, 2000] HU; PET and MR [background, p99.9 / p99.5 of the training voxels above background]
    (the background is 0 unless a zscore normalisation moved it; then the lowest of the volumes')."""
    domain.check_rules()
    if domain.kind == "CT":
        return CT_WINDOW
    floors = list(backgrounds) if backgrounds is not None else [0.0] * len(train_slices)
    total = sum(s.size for s in train_slices)
    stride = max(1, int(np.ceil(total / MAX_PERCENTILE_SAMPLES)))
    samples = [s.reshape(-1)[::stride] for s in train_slices]
    samples = np.concatenate([v[v > floor] for v, floor in zip(samples, floors)])
    if samples.size == 0:
        raise PrepareError(f"domain {domain.name}: training data have no values above the background; "
                           f"pass --{domain.flag}=lo,hi")
    return float(min(floors)), float(np.percentile(samples, ROBUST_PERCENTILE[domain.kind]))


def stderr_log(message: str) -> None:
    print(f"[prepare] {message}", file=sys.stderr, flush=True)


def _check_options(out: str, names: Sequence[str], size: int, spacing_mm: float, min_foreground: float,
                   overwrite: bool) -> None:
    if not all(str(n).strip() for n in names):
        raise PrepareError("--task, --domain_a and --domain_b must be non-empty")
    if size < 16 or size % 4:
        raise PrepareError(f"--size must be a multiple of 4 and at least 16, got {size}")
    if not spacing_mm > 0:
        raise PrepareError(f"--spacing_mm must be positive, got {spacing_mm}")
    if not 0 <= min_foreground < 1:
        raise PrepareError(f"--min_foreground must be in [0, 1), got {min_foreground}")
    if os.path.exists(out) and not overwrite:
        raise PrepareError(f"{out} already exists (use --overwrite to replace it)")


def _identity_groups(train: dict, val: list, ids) -> dict:
    """{"train A": [(path, ids(source)), ...], "train B": ..., "validation": ...}."""
    return {"train A": [(s.path, ids(s)) for s in train["A"]], "train B": [(s.path, ids(s)) for s in train["B"]],
            "validation": [(s.path, ids(s)) for pair in val for s in pair]}


def _val_pair_sets(val: list) -> set:
    return {frozenset((a.path, b.path)) for a, b in val}


def _check_subjects(train: dict, val: list, allow_shared_subjects: bool) -> None:
    """Subject ids unique in validation; no subject (name key or DICOM id) shared by train A, train B and val."""
    val_ids = [a.subject for a, _ in val]
    if len(set(val_ids)) != len(val_ids):
        raise PrepareError(f"--val_pairs: a subject occurs twice ({sorted(val_ids)})")
    if allow_shared_subjects:
        return
    groups = _identity_groups(train, val, lambda s: {"subject": identity.subject_key(s.subject)})
    keys = {g: {ids["subject"] for _, ids in entries} for g, entries in groups.items()}
    for first, second in (("train A", "train B"), ("validation", "train A"), ("validation", "train B")):
        shared = sorted(keys[first] & keys[second])
        if shared:
            raise PrepareError(f"{first} and {second} share subject ids {shared[:5]} "
                               f"(names without modality words); {SHARED_HINT}")
    overlap = identity.first_overlap(_identity_groups(train, val, lambda s: identity.dicom_ids(s.geometry)),
                                     _val_pair_sets(val))
    if overlap:
        raise PrepareError(f"{overlap}; {SHARED_HINT}")


def _validated_sources(domains: dict, train_paths: dict, val_pairs, spacing_mm: float,
                       allow_shared_subjects: bool) -> tuple[dict, list]:
    """Headers of every input, checked for readability, modality, subject ids and val co-registration."""
    for domain in domains.values():
        domain.check_rules()
    train = {d: _sources(train_paths[d], f"--train_{d.lower()}", domains[d].kind) for d in "AB"}
    val = [tuple(_sources([path], f"--val_pairs ({d})", domains[d].kind)[0] for path, d in zip(pair, "AB"))
           for pair in val_pairs]
    if not train["A"] or not train["B"] or not val:
        raise PrepareError("--train_a, --train_b and --val_pairs must each name at least one volume")
    _check_subjects(train, val, allow_shared_subjects)
    for a, b in val:
        _check_val_pair(a, b, spacing_mm)
    return train, val


def _load(source: Source, domain: Domain, fill_nonfinite: bool, log) -> LoadedVolume:
    loaded = normalise_volume(volumes.read_volume(source.path), domain.normalisation, domain.name,
                              path=source.path, fill_nonfinite=fill_nonfinite)
    if loaded.nonfinite_filled:
        log(f"{source.subject}: filled {loaded.nonfinite_filled} non-finite voxels with the background")
    return loaded


def _train_slices(sources: Sequence[Source], domain: Domain, spacing_mm: float, size: int, fill_nonfinite: bool,
                  log) -> DomainSlices:
    out = DomainSlices()
    for i, source in enumerate(sources, 1):
        grid = _iso_grid(source.geometry, spacing_mm)
        loaded = _load(source, domain, fill_nonfinite, log)
        out.slices.append(_slices(loaded, grid, size))
        out.backgrounds.append(loaded.background)
        out.fingerprints.append((source.path, identity.fingerprint(loaded.volume)))
        shape = "x".join(str(n) for n in grid[0])
        log(f"train {domain.letter} {i}/{len(sources)} {source.subject}: {shape} voxels at {spacing_mm:g} mm")
    return out


def _keep_foreground(data: DomainSlices, sources: Sequence[Source], domain: Domain, window: tuple[float, float],
                     min_foreground: float, log) -> tuple[np.ndarray, list[str]]:
    masks = [foreground_fraction(s, window, bg) >= min_foreground for s, bg in zip(data.slices, data.backgrounds)]
    kept = [s[m] for s, m in zip(data.slices, masks)]
    subjects = [source.subject for source, m in zip(sources, masks) for _ in range(int(m.sum()))]
    log(f"train {domain.letter}: kept {len(subjects)} of {sum(len(s) for s in data.slices)} slices "
        f"(foreground >= {min_foreground:g})")
    if not subjects:
        raise PrepareError(f"train {domain.letter}: no slice has foreground >= {min_foreground:g} in window "
                           f"{list(window)}; lower --min_foreground or set --{domain.flag}")
    return np.concatenate(kept), subjects


def _val_slices(val: list, domains: dict, windows: dict, spacing_mm: float, size: int, min_foreground: float,
                fill_nonfinite: bool, log) -> tuple[np.ndarray, np.ndarray, list[str], list]:
    """Paired slices (each B volume resampled onto its A partner's grid) and every volume's fingerprint."""
    val_a, val_b, subjects, fingerprints = [], [], [], []
    for i, pair in enumerate(val, 1):
        grid = _iso_grid(pair[0].geometry, spacing_mm)
        loaded = [_load(src, domains[d], fill_nonfinite, log) for src, d in zip(pair, "AB")]
        fingerprints += [(src.path, identity.fingerprint(lv.volume)) for src, lv in zip(pair, loaded)]
        sa, sb = (_slices(lv, grid, size) for lv in loaded)
        mask = (foreground_fraction(sa, windows["A"], loaded[0].background) >= min_foreground) & \
               (foreground_fraction(sb, windows["B"], loaded[1].background) >= min_foreground)
        val_a.append(sa[mask])
        val_b.append(sb[mask])
        subjects += [pair[0].subject] * int(mask.sum())
        log(f"val {i}/{len(val)} {pair[0].subject}: kept {int(mask.sum())} of {len(mask)} paired slices")
    if not subjects:
        raise PrepareError(f"validation: no paired slice has foreground >= {min_foreground:g} in both domains")
    return np.concatenate(val_a), np.concatenate(val_b), subjects, fingerprints


def _check_content(train: dict, val_fingerprints: list, val: list) -> None:
    groups = {"train A": train["A"].fingerprints, "train B": train["B"].fingerprints,
              "validation": val_fingerprints}
    match = identity.first_content_match(groups, _val_pair_sets(val))
    if match:
        raise PrepareError(f"{match}: the same scan must not be used twice; {SHARED_HINT}")


def _domains(domain_a, domain_b, window_a, window_b, normalise_a, normalise_b) -> dict:
    def rule(value, flag):
        return value if isinstance(value, Normalisation) else parse_normalisation(value or "none", flag)

    return {"A": Domain("A", domain_a, None if window_a is None else tuple(map(float, window_a)),
                        rule(normalise_a, "normalise_a")),
            "B": Domain("B", domain_b, None if window_b is None else tuple(map(float, window_b)),
                        rule(normalise_b, "normalise_b"))}


def prepare_store(out, *, task: str, domain_a: str, domain_b: str, train_a: Sequence[str],
                  train_b: Sequence[str], val_pairs: Sequence[tuple[str, str]], size: int = 256,
                  spacing_mm: float = 1.0, window_a: Sequence[float] | None = None,
                  window_b: Sequence[float] | None = None, min_foreground: float = 0.05,
                  normalise_a: str | Normalisation = "none", normalise_b: str | Normalisation = "none",
                  fill_nonfinite: bool = False, overwrite: bool = False, allow_shared_subjects: bool = False,
                  log: Callable[[str], None] = stderr_log) -> str:
    """Build a slice store at ``out`` from volume paths; every input is checked (headers only) before any
    pixel data is read, and for identical content before anything is written. Raises :class:`PrepareError`,
    ``VolumeError`` or ``StoreError`` for bad input."""
    out = os.fspath(out)
    _check_options(out, (task, domain_a, domain_b), size, spacing_mm, min_foreground, overwrite)
    domains = _domains(domain_a, domain_b, window_a, window_b, normalise_a, normalise_b)
    train, val = _validated_sources(domains, {"A": train_a, "B": train_b}, val_pairs, spacing_mm,
                                    allow_shared_subjects)
    windows, kept, data = {}, {}, {}
    for d, domain in domains.items():
        data[d] = _train_slices(train[d], domain, spacing_mm, size, fill_nonfinite, log)
        windows[d] = domain.window or default_window(domain, data[d].slices, data[d].backgrounds)
        log(f"domain {d} ({domain.name}) normalisation {domain.normalisation.label}, "
            f"window [{windows[d][0]:g}, {windows[d][1]:g}]")
        kept[d] = _keep_foreground(data[d], train[d], domain, windows[d], min_foreground, log)
    val_a, val_b, val_subjects, val_fingerprints = _val_slices(val, domains, windows, spacing_mm, size,
                                                               min_foreground, fill_nonfinite, log)
    if not allow_shared_subjects:
        _check_content(data, val_fingerprints, val)
    write_store(out, task=task, domain_a=domain_a, domain_b=domain_b, pixel_spacing_mm=float(spacing_mm),
                train_a=kept["A"][0], train_a_subjects=kept["A"][1], train_b=kept["B"][0],
                train_b_subjects=kept["B"][1], val_a=val_a, val_b=val_b, val_subjects=val_subjects,
                window_a=windows["A"], window_b=windows["B"], overwrite=overwrite,
                normalisation_a=domains["A"].normalisation.as_dict(),
                normalisation_b=domains["B"].normalisation.as_dict(),
                extra_attrs={"created_by": "cycle_medgan_tf.data.prepare",
                             "slice_orientation": "axial, rows anterior->posterior, columns right->left",
                             "min_foreground": float(min_foreground), "foreground_level": FOREGROUND_LEVEL})
    log(f"wrote {out}: train A {len(kept['A'][1])}, train B {len(kept['B'][1])}, val {len(val_subjects)} slices")
    return out


if __name__ == "__main__":       # the command: cycle_medgan_tf/commands/prepare.py
    from cycle_medgan_tf.commands.prepare import run
    run()
