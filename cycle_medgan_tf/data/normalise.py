"""Per-domain intensity normalisation: one recorded rule, applied the same way by prepare, training and translate.

Methods (``--normalise_a`` / ``--normalise_b`` in prepare; recorded in the store and the export manifest):

* ``none``: physical units as read (CT in HU, PET as stored, MR in scanner units).
* ``suv``: PET in body-weight SUV (g/ml); where the factor comes from is :mod:`cycle_medgan_tf.data.suv`.
* ``percentile[:P]``: per volume, ``x / P_head`` where ``P_head`` is the P-th percentile (default 99.5) of the
  head voxels, so that percentile maps to 1.
* ``zscore``: per volume, ``(x - mean_head) / std_head`` over the head voxels.

Every volume gets an affine map ``y = (x - offset) / scale`` (:class:`Scaling`), whose parameters come from the
volume as read, on its own grid, before any resampling; resampling is linear, so it commutes with the map, and
prepare and translate derive the same parameters from the same file. The head mask is Otsu's threshold with
holes filled and only the largest connected component kept: it does not depend on the intensity scale.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from cycle_medgan_tf.data import suv
from cycle_medgan_tf.data.intensity import handle_nonfinite
from cycle_medgan_tf.data.volumes import Volume, VolumeError, background_value

METHODS = ("none", "suv", "percentile", "zscore")
PER_VOLUME = ("percentile", "zscore")
DEFAULT_PERCENTILE = 99.5
MASK_MAX_VOXELS = 2_000_000     # the head mask is found on a strided copy of larger volumes


class NormalisationError(VolumeError):
    """A normalisation cannot be parsed or applied; the message is meant for the user."""


@dataclass(frozen=True)
class Scaling:
    """The affine map of one volume: ``normalised = (physical - offset) / scale``."""

    offset: float = 0.0
    scale: float = 1.0

    def forward(self, x):
        return (np.asarray(x, dtype=np.float32) - np.float32(self.offset)) / np.float32(self.scale)

    def inverse(self, y):
        return np.asarray(y, dtype=np.float32) * np.float32(self.scale) + np.float32(self.offset)

    def as_dict(self) -> dict:
        return {"offset": float(self.offset), "scale": float(self.scale)}


IDENTITY = Scaling()


@dataclass(frozen=True)
class Normalisation:
    """A domain's normalisation rule: ``method`` in :data:`METHODS` (and the percentile of ``percentile``)."""

    method: str = "none"
    percentile: float = DEFAULT_PERCENTILE

    def __post_init__(self):
        if self.method not in METHODS:
            raise NormalisationError(f"unknown normalisation {self.method!r} (choose from {', '.join(METHODS)})")
        if not 50.0 <= float(self.percentile) <= 100.0:
            raise NormalisationError(f"normalisation percentile must be in [50, 100], got {self.percentile}")

    @property
    def per_volume(self) -> bool:
        return self.method in PER_VOLUME

    @property
    def label(self) -> str:
        return f"percentile:{self.percentile:g}" if self.method == "percentile" else self.method

    def as_dict(self) -> dict:
        out = {"method": self.method}
        if self.method == "percentile":
            out["percentile"] = float(self.percentile)
        return out

    def check_modality(self, kind: str | None, domain: str, flag: str) -> None:
        """Refuse a method that does not fit the domain's modality (SUV is PET only; CT stays in HU)."""
        if self.method == "suv" and kind != "PET":
            raise NormalisationError(f"--{flag}=suv needs a PET domain, but domain {domain!r} is not PET")
        if self.per_volume and kind == "CT":
            raise NormalisationError(f"--{flag}={self.method}: CT is already in physical units (HU); use none")

    def fit(self, data: np.ndarray, source: str = "volume") -> Scaling:
        """The :class:`Scaling` of one volume (physical units; non-finite voxels are ignored)."""
        if not self.per_volume:
            return IDENTITY
        head = np.asarray(data, dtype=np.float32)[head_mask(data)]
        if head.size < 10:
            raise NormalisationError(f"{source}: no head found for {self.method} normalisation "
                                     f"(the image is empty or constant)")
        if self.method == "percentile":
            level = float(np.percentile(head, self.percentile))
            if not level > 0:
                raise NormalisationError(f"{source}: the {self.percentile:g}th percentile of the head is {level:g}; "
                                         f"percentile normalisation needs positive intensities (use zscore)")
            return Scaling(0.0, level)
        std = float(np.std(head, dtype=np.float64))
        if not std > 0:
            raise NormalisationError(f"{source}: head intensities are constant; zscore normalisation impossible")
        return Scaling(float(np.mean(head, dtype=np.float64)), std)


NONE = Normalisation()


def parse_normalisation(text: str, flag: str = "normalise") -> Normalisation:
    """``none``, ``suv``, ``zscore``, ``percentile`` or ``percentile:P`` to a :class:`Normalisation`."""
    method, _, argument = str(text).strip().lower().partition(":")
    if argument and method != "percentile":
        raise NormalisationError(f"--{flag}: only percentile takes a value (percentile:P), got {text!r}")
    try:
        return Normalisation(method or "none", float(argument) if argument else DEFAULT_PERCENTILE)
    except ValueError:
        raise NormalisationError(f"--{flag}: percentile:P needs a number P, got {text!r}") from None
    except NormalisationError as exc:
        raise NormalisationError(f"--{flag}: {exc}") from None


def from_record(value) -> Normalisation:
    """The normalisation recorded in a store attribute or manifest entry (JSON text, dict or missing = none)."""
    if value is None or (isinstance(value, (str, bytes)) and not value) or value == {}:
        return NONE
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise NormalisationError(f"normalisation record {value!r} is not JSON") from None
    if not isinstance(value, dict) or "method" not in value:
        raise NormalisationError(f"normalisation record {value!r} has no method")
    return Normalisation(str(value["method"]), float(value.get("percentile", DEFAULT_PERCENTILE)))


def output_scaling(source: Normalisation, target: Normalisation, source_scaling: Scaling, same_modality: bool
                   ) -> tuple[Scaling | None, str]:
    """How a translation's output is mapped back (None: it cannot be), and the unit it ends in.

    ``none`` and ``suv`` targets are physical already. A per-volume target is inverted with the input's own
    parameters when both domains are the same modality with the same method (e.g. MR -> MR zscore: the output
    is in the input's scanner units); otherwise no volume of the target domain exists to invert with, and the
    output stays in normalised units.
    """
    if target.method == "none":
        return IDENTITY, "physical"
    if target.method == "suv":
        return IDENTITY, "SUV (g/ml)"
    if same_modality and source.method == target.method:
        return source_scaling, "the input's units"
    return None, f"{target.label} units (not invertible without a target-domain volume)"


def head_mask(data: np.ndarray) -> np.ndarray:
    """Boolean mask of the head (the largest bright object): Otsu's threshold, holes filled."""
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    data = np.asarray(data, dtype=np.float32)
    finite = np.isfinite(data)
    values = data[finite]
    if values.size == 0 or values.min() == values.max():
        return np.zeros(data.shape, dtype=bool)
    stride = max(1, int(np.ceil(values.size / MASK_MAX_VOXELS)))
    threshold = threshold_otsu(values[::stride])
    mask = finite & (data > threshold)
    labels, count = ndimage.label(mask)
    if count > 1:
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        mask = labels == int(np.argmax(sizes))
    return ndimage.binary_fill_holes(mask)


@dataclass
class LoadedVolume:
    """An input ready for slicing: ``volume`` in normalised units on its own grid, and how it got there."""

    volume: Volume
    scaling: Scaling
    physical_background: float
    suv_factor: float | None = None
    nonfinite_filled: int = 0

    @property
    def background(self) -> float:
        """The domain's background in normalised units (the fill for resampling and padding)."""
        return float(self.scaling.forward(self.physical_background))


def normalise_volume(volume: Volume, normalisation: Normalisation, domain: str, *, path=None,
                     suv_factor: float | None = None, fill_nonfinite: bool = False) -> LoadedVolume:
    """Non-finite check (refuse, or fill with the background), SUV (from ``path``'s DICOM headers or sidecar, or
    ``suv_factor``; without either the data count as SUV already), then the volume's own normalisation."""
    background = background_value(domain)
    source = volume.source or (str(path) if path is not None else "input")
    data, filled = handle_nonfinite(volume.data, source, background, fill_nonfinite)
    volume = Volume(data, volume.affine, volume.modality, volume.source)
    factor = None
    if normalisation.method == "suv":
        if path is not None:
            volume, factor = suv.to_suv(volume, path, suv_factor)
        elif suv_factor is not None:
            factor = suv.nifti_suv_factor("input", suv_factor)
            volume = Volume(volume.data * np.float32(factor), volume.affine, volume.modality, volume.source)
    scaling = normalisation.fit(volume.data, source)
    normalised = Volume(scaling.forward(volume.data), volume.affine, volume.modality, volume.source)
    return LoadedVolume(normalised, scaling, background, factor, filled)
