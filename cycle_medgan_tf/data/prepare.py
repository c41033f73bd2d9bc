"""Prepare a format-v1 slice store from real NIfTI / DICOM volumes.

    python -m cycle_medgan_tf.data.prepare --task=pet_ct --domain_a=PET --domain_b=CT \\
        --train_a=pet_train.txt --train_b=ct_train.txt --val_pairs=val_pairs.txt --out=pet_ct.h5

A LIST flag is a text file with one path per line (NIfTI file or DICOM series directory; blank lines and
``#`` comments are ignored; relative paths are looked up beside the list file, then in the working directory)
or a comma-separated list of paths. ``--val_pairs`` lines are ``pathA,pathB`` (co-registered volumes of one
subject); inline it is ``a1,b1,a2,b2,...``.

Every volume is resampled through its affine onto a canonical (RAS+) grid with isotropic ``--spacing_mm``
voxels; its axial slices, in radiological display orientation, are centre-cropped or padded (with the domain's
background) to ``--size`` pixels. Validation B volumes are resampled onto their A partner's grid, so row i
of val/A and val/B shows the same anatomy. Slices whose foreground fraction (pixels above the window's low end
plus 5 % of its width) is below ``--min_foreground`` are dropped. Subject ids are file names without
.nii/.nii.gz, or DICOM directory names.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from cycle_medgan_tf.cli import run_app
from cycle_medgan_tf.data import volumes
from cycle_medgan_tf.data.store import StoreError, write_store
from cycle_medgan_tf.data.volumes import VolumeError

FOREGROUND_LEVEL = 0.05         # a pixel is foreground above lo + FOREGROUND_LEVEL * (hi - lo)
CT_WINDOW = (-1000.0, 2000.0)
ROBUST_PERCENTILE = {"PET": 99.9, "MR": 99.5}
MIN_VAL_COVERAGE = 0.9          # share of a val A grid that must lie inside its B partner's field of view
MAX_PERCENTILE_SAMPLES = 4_000_000


class PrepareError(Exception):
    """Bad input for store preparation; the message is meant for the user."""


@dataclass
class Source:
    """One input volume: path, subject id and header geometry."""

    path: str
    subject: str
    geometry: volumes.Geometry


def subject_id(path) -> str:
    """Subject id of an input: the file name without .nii/.nii.gz, or the DICOM directory's name."""
    name = os.path.basename(os.path.normpath(os.fspath(path)))
    return volumes.strip_nifti_suffix(name)


def _resolve(entry: str, base: str | None) -> str:
    entry = os.path.expanduser(entry.strip())
    if base is not None and not os.path.isabs(entry):
        beside = os.path.join(base, entry)
        if os.path.exists(beside) or not os.path.exists(entry):
            return beside
    return entry


def _list_entries(value: str, flag: str) -> tuple[list[str], str | None]:
    value = value.strip()
    if os.path.isfile(value) and not volumes.is_nifti_path(value):
        try:
            with open(value, encoding="utf-8") as f:
                lines = [line.split("#", 1)[0].strip() for line in f]
        except (OSError, UnicodeDecodeError) as exc:
            raise PrepareError(f"--{flag}: cannot read list file {value} ({exc})") from exc
        return [line for line in lines if line], os.path.dirname(os.path.abspath(value))
    return [v for v in (part.strip() for part in value.split(",")) if v], None


def read_path_list(value: str, flag: str) -> list[str]:
    """Paths named by a LIST flag value (a list file or a comma-separated list)."""
    entries, base = _list_entries(value, flag)
    if not entries:
        raise PrepareError(f"--{flag}: no paths given")
    return [_resolve(e, base) for e in entries]


def read_pair_list(value: str, flag: str) -> list[tuple[str, str]]:
    """(pathA, pathB) pairs from a list file of ``pathA,pathB`` lines or an inline ``a1,b1,a2,b2`` list."""
    entries, base = _list_entries(value, flag)
    if base is None:
        if len(entries) % 2:
            raise PrepareError(f"--{flag}: expected pathA,pathB pairs, got an odd number of paths ({len(entries)})")
        pairs = list(zip(entries[0::2], entries[1::2]))
    else:
        pairs = []
        for line in entries:
            parts = [p.strip() for p in line.replace("\t", ",").split(",") if p.strip()]
            if len(parts) != 2:
                raise PrepareError(f"--{flag}: line {line!r} is not of the form pathA,pathB")
            pairs.append((parts[0], parts[1]))
    if not pairs:
        raise PrepareError(f"--{flag}: no pairs given")
    return [(_resolve(a, base), _resolve(b, base)) for a, b in pairs]


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


def _slices(volume: volumes.Volume, grid, size: int, fill: float) -> np.ndarray:
    resampled = volumes.resample_to_grid(volume, *grid, cval=fill)
    return volumes.center_crop_pad(volumes.axial_slices(resampled), size, fill)


def foreground_fraction(slices: np.ndarray, window: Sequence[float]) -> np.ndarray:
    """Per slice, the fraction of pixels above ``lo + FOREGROUND_LEVEL * (hi - lo)``."""
    level = window[0] + FOREGROUND_LEVEL * (window[1] - window[0])
    return np.mean(np.asarray(slices) > level, axis=(-2, -1))


@dataclass
class Domain:
    """One side of the task: letter "A"/"B", name, modality kind, background and the window flag's value."""

    letter: str
    name: str
    window: tuple[float, float] | None

    @property
    def kind(self) -> str | None:
        return volumes.modality_kind(self.name)

    @property
    def fill(self) -> float:
        return volumes.background_value(self.name)

    @property
    def flag(self) -> str:
        return f"window_{self.letter.lower()}"

    def require_window_rule(self) -> None:
        """Refuse a domain that has neither a window flag nor a modality with a default window."""
        if self.window is None and self.kind not in ("CT", *ROBUST_PERCENTILE):
            raise PrepareError(f"no default intensity window for domain {self.name!r} (not CT, PET or MR); "
                               f"pass --{self.flag}=lo,hi")


def default_window(domain: Domain, train_slices: Sequence[np.ndarray]) -> tuple[float, float]:
    """CT [-1000, 2000] HU; PET [0, p99.9]; MR [0, p99.5], percentiles of the training voxels above 0."""
    domain.require_window_rule()
    if domain.kind == "CT":
        return CT_WINDOW
    total = sum(s.size for s in train_slices)
    stride = max(1, int(np.ceil(total / MAX_PERCENTILE_SAMPLES)))
    samples = np.concatenate([s.reshape(-1)[::stride] for s in train_slices])
    samples = samples[samples > 0]
    if samples.size == 0:
        raise PrepareError(f"domain {domain.name}: training data have no values above 0; pass --{domain.flag}=lo,hi")
    return 0.0, float(np.percentile(samples, ROBUST_PERCENTILE[domain.kind]))


def _stderr_log(message: str) -> None:
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


def _check_subjects(train: dict, val: list, allow_shared_subjects: bool) -> None:
    val_ids = [a.subject for a, _ in val]
    if len(set(val_ids)) != len(val_ids):
        raise PrepareError(f"--val_pairs: a subject occurs twice ({sorted(val_ids)})")
    if allow_shared_subjects:
        return
    ids = {d: [s.subject for s in train[d]] for d in "AB"}
    all_val = val_ids + [b.subject for _, b in val]
    for label, first, second in (("train A and train B", ids["A"], ids["B"]),
                                 ("validation and train A", all_val, ids["A"]),
                                 ("validation and train B", all_val, ids["B"])):
        shared = sorted(set(first) & set(second))
        if shared:
            raise PrepareError(f"{label} share subject ids {shared[:5]}; training must stay unpaired and "
                               f"validation separate (use --allow_shared_subjects to accept this)")


def _validated_sources(domains: dict, train_paths: dict, val_pairs, spacing_mm: float,
                       allow_shared_subjects: bool) -> tuple[dict, list]:
    """Headers of every input, checked for readability, modality, subject ids and val co-registration."""
    for domain in domains.values():
        domain.require_window_rule()
    train = {d: _sources(train_paths[d], f"--train_{d.lower()}", domains[d].kind) for d in "AB"}
    val = [tuple(_sources([path], f"--val_pairs ({d})", domains[d].kind)[0] for path, d in zip(pair, "AB"))
           for pair in val_pairs]
    if not train["A"] or not train["B"] or not val:
        raise PrepareError("--train_a, --train_b and --val_pairs must each name at least one volume")
    _check_subjects(train, val, allow_shared_subjects)
    for a, b in val:
        _check_val_pair(a, b, spacing_mm)
    return train, val


def _train_slices(sources: Sequence[Source], domain: Domain, spacing_mm: float, size: int, log) -> list[np.ndarray]:
    slices = []
    for i, source in enumerate(sources, 1):
        grid = _iso_grid(source.geometry, spacing_mm)
        slices.append(_slices(volumes.read_volume(source.path), grid, size, domain.fill))
        shape = "x".join(str(n) for n in grid[0])
        log(f"train {domain.letter} {i}/{len(sources)} {source.subject}: {shape} voxels at {spacing_mm:g} mm")
    return slices


def _keep_foreground(slices: Sequence[np.ndarray], sources: Sequence[Source], domain: Domain,
                     window: tuple[float, float], min_foreground: float, log) -> tuple[np.ndarray, list[str]]:
    masks = [foreground_fraction(s, window) >= min_foreground for s in slices]
    kept = [s[m] for s, m in zip(slices, masks)]
    subjects = [source.subject for source, m in zip(sources, masks) for _ in range(int(m.sum()))]
    log(f"train {domain.letter}: kept {len(subjects)} of {sum(len(s) for s in slices)} slices "
        f"(foreground >= {min_foreground:g})")
    if not subjects:
        raise PrepareError(f"train {domain.letter}: no slice has foreground >= {min_foreground:g} in window "
                           f"{list(window)}; lower --min_foreground or set --{domain.flag}")
    return np.concatenate(kept), subjects


def _val_slices(val: list, domains: dict, windows: dict, spacing_mm: float, size: int, min_foreground: float,
                log) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Paired slices: each B volume is resampled onto its A partner's grid."""
    val_a, val_b, subjects = [], [], []
    for i, pair in enumerate(val, 1):
        grid = _iso_grid(pair[0].geometry, spacing_mm)
        sa, sb = (_slices(volumes.read_volume(src.path), grid, size, domains[d].fill) for src, d in zip(pair, "AB"))
        mask = (foreground_fraction(sa, windows["A"]) >= min_foreground) & \
               (foreground_fraction(sb, windows["B"]) >= min_foreground)
        val_a.append(sa[mask])
        val_b.append(sb[mask])
        subjects += [pair[0].subject] * int(mask.sum())
        log(f"val {i}/{len(val)} {pair[0].subject}: kept {int(mask.sum())} of {len(mask)} paired slices")
    if not subjects:
        raise PrepareError(f"validation: no paired slice has foreground >= {min_foreground:g} in both domains")
    return np.concatenate(val_a), np.concatenate(val_b), subjects


def prepare_store(out, *, task: str, domain_a: str, domain_b: str, train_a: Sequence[str],
                  train_b: Sequence[str], val_pairs: Sequence[tuple[str, str]], size: int = 256,
                  spacing_mm: float = 1.0, window_a: Sequence[float] | None = None,
                  window_b: Sequence[float] | None = None, min_foreground: float = 0.05,
                  overwrite: bool = False, allow_shared_subjects: bool = False,
                  log: Callable[[str], None] = _stderr_log) -> str:
    """Build a slice store at ``out`` from volume paths; every input is checked (headers only) before any
    pixel data is read. Raises :class:`PrepareError`, ``VolumeError`` or ``StoreError`` for bad input."""
    out = os.fspath(out)
    _check_options(out, (task, domain_a, domain_b), size, spacing_mm, min_foreground, overwrite)
    domains = {"A": Domain("A", domain_a, None if window_a is None else tuple(map(float, window_a))),
               "B": Domain("B", domain_b, None if window_b is None else tuple(map(float, window_b)))}
    train, val = _validated_sources(domains, {"A": train_a, "B": train_b}, val_pairs, spacing_mm,
                                    allow_shared_subjects)
    windows, kept = {}, {}
    for d, domain in domains.items():
        slices = _train_slices(train[d], domain, spacing_mm, size, log)
        windows[d] = domain.window or default_window(domain, slices)
        log(f"domain {d} ({domain.name}) window [{windows[d][0]:g}, {windows[d][1]:g}]")
        kept[d] = _keep_foreground(slices, train[d], domain, windows[d], min_foreground, log)
    val_a, val_b, val_subjects = _val_slices(val, domains, windows, spacing_mm, size, min_foreground, log)
    write_store(out, task=task, domain_a=domain_a, domain_b=domain_b, pixel_spacing_mm=float(spacing_mm),
                train_a=kept["A"][0], train_a_subjects=kept["A"][1], train_b=kept["B"][0],
                train_b_subjects=kept["B"][1], val_a=val_a, val_b=val_b, val_subjects=val_subjects,
                window_a=windows["A"], window_b=windows["B"], overwrite=overwrite,
                extra_attrs={"created_by": "cycle_medgan_tf.data.prepare",
                             "slice_orientation": "axial, rows anterior->posterior, columns right->left",
                             "min_foreground": float(min_foreground), "foreground_level": FOREGROUND_LEVEL})
    log(f"wrote {out}: train A {len(kept['A'][1])}, train B {len(kept['B'][1])}, val {len(val_subjects)} slices")
    return out


# ---------------------------------------------------------------------------------------- command line

def _define_flags() -> None:
    from absl import flags

    flags.DEFINE_string("task", None, "Task name stored in the file, e.g. pet_ct.")
    flags.DEFINE_string("domain_a", None, "Source domain name (CT, PET or MR... decides defaults).")
    flags.DEFINE_string("domain_b", None, "Target domain name.")
    flags.DEFINE_string("train_a", None, "LIST of domain-A training volumes.")
    flags.DEFINE_string("train_b", None, "LIST of domain-B training volumes (other subjects).")
    flags.DEFINE_string("val_pairs", None, "LIST of co-registered pathA,pathB validation pairs.")
    flags.DEFINE_string("out", None, "Output HDF5 slice store.")
    flags.DEFINE_integer("size", 256, "Slice size S (S x S pixels).")
    flags.DEFINE_float("spacing_mm", 1.0, "Isotropic voxel size in mm.")
    flags.DEFINE_string("window_a", "", "Intensity window lo,hi of domain A (default by modality).")
    flags.DEFINE_string("window_b", "", "Intensity window lo,hi of domain B (default by modality).")
    flags.DEFINE_float("min_foreground", 0.05, "Drop slices whose foreground fraction is below this.")
    flags.DEFINE_bool("overwrite", False, "Replace an existing output file.")
    flags.DEFINE_bool("allow_shared_subjects", False, "Accept subjects shared between train A, train B and val.")
    flags.mark_flags_as_required(["task", "domain_a", "domain_b", "train_a", "train_b", "val_pairs", "out"])


def main(argv) -> None:
    """Command-line entry point (flags as in the module docstring)."""
    from absl import flags

    f = flags.FLAGS
    prepare_store(f.out, task=f.task, domain_a=f.domain_a, domain_b=f.domain_b,
                  train_a=read_path_list(f.train_a, "train_a"), train_b=read_path_list(f.train_b, "train_b"),
                  val_pairs=read_pair_list(f.val_pairs, "val_pairs"), size=f.size, spacing_mm=f.spacing_mm,
                  window_a=parse_window(f.window_a, "window_a"), window_b=parse_window(f.window_b, "window_b"),
                  min_foreground=f.min_foreground, overwrite=f.overwrite,
                  allow_shared_subjects=f.allow_shared_subjects)


if __name__ == "__main__":
    _define_flags()
    run_app(main, errors=(PrepareError, VolumeError, StoreError, OSError))
