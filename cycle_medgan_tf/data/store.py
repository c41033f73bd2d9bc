"""HDF5 slice store, format version 1 (layout in data/format.py and the README, "Data format"): writing, opening,
and :func:`check_store`, the one validation of a run's input, whose :class:`StoreInfo` internal readers are handed
instead of validating again.

Images stay in physical units on disk (or in the domain's normalised units, see data/normalise.py);
``to_model_range`` maps them to [-1, 1] through the domain's window, linearly or through its optional transfer
(data/window.py).
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import h5py
import numpy as np

from cycle_medgan_tf.atomic import atomic_path
from cycle_medgan_tf.data import checks
from cycle_medgan_tf.data.format import DOMAINS, FORMAT_NAME, FORMAT_VERSION  # noqa: F401  (importable from here)
from cycle_medgan_tf.data.window import Window, WindowError, as_window, from_model, to_model

_STR_DTYPE = h5py.string_dtype("utf-8")


class StoreError(Exception):
    """Raised for any problem reading or writing a slice store; the message is meant for the user."""


def to_model_range(images: np.ndarray, window: Sequence[float]) -> np.ndarray:
    """Map physical units to [-1, 1] through ``window`` (``(lo, hi)``: linearly; a :class:`Window` with a
    transfer: piecewise linearly), clipping outside it."""
    return to_model(images, window)


def from_model_range(x: np.ndarray, window: Sequence[float]) -> np.ndarray:
    """Inverse of :func:`to_model_range` (for values inside the window): [-1, 1] to physical units."""
    return from_model(x, window)


def _check_window(name: str, window: Sequence[float]) -> Window:
    try:
        lo, hi = float(window[0]), float(window[1])
    except (TypeError, ValueError, IndexError) as exc:
        raise StoreError(f"{name} must be a pair (lo, hi) of numbers, got {window!r}") from exc
    if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
        raise StoreError(f"{name} must satisfy lo < hi with finite values, got [{lo}, {hi}]")
    if max(abs(lo), abs(hi)) > 1e12 or np.float32(hi) <= np.float32(lo):
        raise StoreError(f"{name} [{lo}, {hi}] is not a plausible intensity window")
    try:
        return as_window(window)
    except WindowError as exc:
        raise StoreError(f"{name}: {exc}") from exc


def _check_images(name: str, images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 3:
        raise StoreError(f"{name} must have shape (N, H, W), got {images.shape}")
    if images.shape[0] == 0:
        raise StoreError(f"{name} is empty")
    if not np.issubdtype(images.dtype, np.floating):
        raise StoreError(f"{name} must be floating point, got {images.dtype}")
    images = images.astype(np.float32, copy=False)
    if not np.all(np.isfinite(images)):
        raise StoreError(f"{name} contains NaN or Inf values")
    return images


def _check_subjects(name: str, subjects: Sequence[str], n: int) -> list[str]:
    subjects = [str(s) for s in subjects]
    if len(subjects) != n:
        raise StoreError(f"{name} has {len(subjects)} entries but there are {n} slices")
    return subjects


def write_store(path, *, task: str, domain_a: str, domain_b: str, pixel_spacing_mm: float,
                train_a, train_a_subjects, train_b, train_b_subjects, val_a, val_b, val_subjects,
                window_a, window_b, overwrite: bool = False, extra_attrs: dict | None = None,
                normalisation_a: dict | None = None, normalisation_b: dict | None = None) -> str:
    """Write a format-v1 slice store atomically (temporary name, then rename) and return its path.

    Images are float32 (N, H, W) arrays in physical (or normalised) units; windows are (lo, hi); a domain's
    ``normalisation`` ({"method": ...}, see data/normalise.py) is recorded when given. The file is written
    without HDF5 timestamps, so the same inputs give the same bytes.
    """
    path = os.fspath(path)
    if os.path.exists(path) and not overwrite:
        raise StoreError(f"{path} already exists (use --overwrite to replace it)")
    train_a = _check_images("train/A/images", train_a)
    train_b = _check_images("train/B/images", train_b)
    val_a = _check_images("val/A/images", val_a)
    val_b = _check_images("val/B/images", val_b)
    if val_a.shape != val_b.shape:
        raise StoreError(f"val/A {val_a.shape} and val/B {val_b.shape} must have the same shape (paired)")
    shapes = {arr.shape[1:] for arr in (train_a, train_b, val_a, val_b)}
    if len(shapes) != 1:
        raise StoreError(f"all images must share one slice size, got {sorted(shapes)}")
    subjects = {
        "train/A/subjects": _check_subjects("train_a_subjects", train_a_subjects, len(train_a)),
        "train/B/subjects": _check_subjects("train_b_subjects", train_b_subjects, len(train_b)),
        "val/subjects": _check_subjects("val_subjects", val_subjects, len(val_a)),
    }
    windows = {"A": _check_window("window_a", window_a), "B": _check_window("window_b", window_b)}
    normalisations = {"A": normalisation_a, "B": normalisation_b}

    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with atomic_path(path, suffix=".h5") as tmp:
        with h5py.File(tmp, "w", track_order=False) as f:
            f.attrs["format"] = FORMAT_NAME
            f.attrs["version"] = FORMAT_VERSION
            f.attrs["task"] = str(task)
            f.attrs["domain_a"] = str(domain_a)
            f.attrs["domain_b"] = str(domain_b)
            f.attrs["pixel_spacing_mm"] = float(pixel_spacing_mm)
            for key, value in (extra_attrs or {}).items():
                f.attrs[key] = value
            chunk = (1,) + train_a.shape[1:]
            for name, arr in (("train/A/images", train_a), ("train/B/images", train_b),
                              ("val/A/images", val_a), ("val/B/images", val_b)):
                f.create_dataset(name, data=arr, chunks=chunk, track_times=False)
            for name, values in subjects.items():
                f.create_dataset(name, data=np.array(values, dtype=object), dtype=_STR_DTYPE, track_times=False)
            for domain in DOMAINS:
                f[f"train/{domain}"].attrs["window"] = np.array(windows[domain], dtype=np.float64)
                if not windows[domain].linear:
                    f[f"train/{domain}"].attrs["transfer"] = windows[domain].transfer_array()
                if normalisations[domain] is not None:
                    f[f"train/{domain}"].attrs["normalisation"] = json.dumps(normalisations[domain], sort_keys=True)
    return path


@dataclass
class SliceStore:
    """An open format-v1 store. Datasets are read lazily from the HDF5 file."""

    file: h5py.File
    path: str

    @property
    def task(self) -> str:
        return str(self.file.attrs["task"])

    @property
    def domain_a(self) -> str:
        return str(self.file.attrs["domain_a"])

    @property
    def domain_b(self) -> str:
        return str(self.file.attrs["domain_b"])

    @property
    def pixel_spacing_mm(self) -> float:
        return float(self.file.attrs["pixel_spacing_mm"])

    def window(self, domain: str) -> Window:
        """The intensity window of domain "A" or "B": ``(lo, hi)`` and its transfer, if any (data/window.py)."""
        attrs = self.file[f"train/{_domain(domain)}"].attrs
        lo, hi = np.asarray(attrs["window"], dtype=np.float64)
        return as_window((float(lo), float(hi)), attrs.get("transfer"))

    def normalisation(self, domain: str) -> dict:
        """The recorded normalisation of domain "A" or "B" ({"method": "none"} for stores without one)."""
        text = self.file[f"train/{_domain(domain)}"].attrs.get("normalisation")
        if text is None:
            return {"method": "none"}
        return json.loads(text.decode("utf-8") if isinstance(text, bytes) else str(text))

    @property
    def window_a(self) -> tuple[float, float]:
        return self.window("A")

    @property
    def window_b(self) -> tuple[float, float]:
        return self.window("B")

    @property
    def image_size(self) -> int:
        return int(self.file["train/A/images"].shape[1])

    def domain_name(self, domain: str) -> str:
        return self.domain_a if _domain(domain) == "A" else self.domain_b

    def train_images(self, domain: str) -> h5py.Dataset:
        return self.file[f"train/{_domain(domain)}/images"]

    def train_subjects(self, domain: str) -> np.ndarray:
        return _read_strings(self.file[f"train/{_domain(domain)}/subjects"])

    def val_images(self, domain: str) -> h5py.Dataset:
        return self.file[f"val/{_domain(domain)}/images"]

    def val_subjects(self) -> np.ndarray:
        return _read_strings(self.file["val/subjects"])

    def summary(self) -> str:
        """One line describing the store."""
        na, nb, nv = (len(self.train_images("A")), len(self.train_images("B")), len(self.val_images("A")))
        size = self.file["train/A/images"].shape[1:]
        return (f"{os.path.basename(self.path)}: task={self.task} {self.domain_a}->{self.domain_b} "
                f"{size[0]}x{size[1]} @ {self.pixel_spacing_mm:g} mm; train A {na} slices "
                f"({len(set(self.train_subjects('A')))} subjects), train B {nb} slices "
                f"({len(set(self.train_subjects('B')))} subjects), val {nv} paired slices "
                f"({len(set(self.val_subjects()))} subjects); windows A {list(self.window_a)} B {list(self.window_b)}"
                + "".join(f"; normalisation {d} {self.normalisation(d)['method']}" for d in DOMAINS
                          if self.normalisation(d)["method"] != "none"))


def _domain(domain: str) -> str:
    d = str(domain).upper()
    if d not in DOMAINS:
        raise ValueError(f"domain must be 'A' or 'B', got {domain!r}")
    return d


def _read_strings(dataset: h5py.Dataset) -> np.ndarray:
    return np.array([s.decode("utf-8") if isinstance(s, bytes) else str(s) for s in dataset[()]], dtype=str)


@contextlib.contextmanager
def open_store(path, validate: bool = True) -> Iterator[SliceStore]:
    """Open a store read-only. With ``validate`` the file is checked first and a :class:`StoreError`
    listing every problem is raised if it is not a valid format-v1 store."""
    path = os.fspath(path)
    if validate:
        problems = checks.validate_store(path)
        if problems:
            raise StoreError(f"{path} is not a valid slice store: " + "; ".join(problems))
    try:
        f = h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        raise StoreError(f"cannot open {path} as HDF5: {exc}") from exc
    try:
        yield SliceStore(file=f, path=path)
    finally:
        f.close()


@dataclass(frozen=True)
class StoreInfo:
    """What a run needs to know about its store, read once when the store was checked (:func:`check_store`)."""

    path: str
    task: str
    domain_a: str
    domain_b: str
    window_a: tuple
    window_b: tuple
    pixel_spacing_mm: float
    store_size: int
    n_train_a: int
    n_train_b: int
    normalisation_a: dict = field(default_factory=dict)     # {} (old stores): "none"
    normalisation_b: dict = field(default_factory=dict)

    @classmethod
    def from_store(cls, path) -> "StoreInfo":
        """:func:`check_store` (kept for callers of the older name)."""
        return check_store(path)


def check_store(path) -> StoreInfo:
    """Validate the store at ``path`` (every problem in one :class:`StoreError`, ``"PATH: problem; problem"``) and
    return its :class:`StoreInfo`. Called once by the entry point of a run; its readers then open the store with
    ``validate=False``."""
    path = os.fspath(path)
    problems = checks.validate_store(path)
    if problems:
        raise StoreError(f"{path}: " + "; ".join(problems))
    with open_store(path, validate=False) as store:
        return StoreInfo(path=os.path.abspath(path), task=store.task, domain_a=store.domain_a,
                         domain_b=store.domain_b, window_a=store.window_a, window_b=store.window_b,
                         pixel_spacing_mm=store.pixel_spacing_mm, store_size=store.image_size,
                         n_train_a=len(store.train_images("A")), n_train_b=len(store.train_images("B")),
                         normalisation_a=store.normalisation("A"), normalisation_b=store.normalisation("B"))
