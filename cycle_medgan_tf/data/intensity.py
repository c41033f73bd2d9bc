"""Input checks before translation: non-finite voxels, and the input's intensities against the training window.

* Non-finite voxels (NaN, Inf) are refused with their count and the first one's voxel index, or, when asked
  (``--fill_nonfinite``), replaced by the domain's background and counted.
* Head voxels (see :func:`cycle_medgan_tf.data.normalise.head_mask`), in the model's normalised units, are
  compared with the training window [lo, hi]: more than :data:`MAX_CLIPPED_FRACTION` of them outside it, or a
  spread (1st to 99th percentile) more than :data:`SCALE_TOLERANCE` times larger or smaller than the window's
  width, stops the translation with the likely cause and the flag that fixes it (``--force`` goes on anyway).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cycle_medgan_tf.data.volumes import VolumeError

MAX_CLIPPED_FRACTION = 0.02     # share of head voxels outside the training window that is still accepted
SCALE_TOLERANCE = 30.0          # head spread / window width must lie in [1 / tol, tol] (1.5 orders of magnitude)
FORCE_HINT = "--force translates anyway"


class IntensityError(VolumeError):
    """The input's intensities do not fit the model; the message names the likely cause and the fix."""


def nonfinite_count(data: np.ndarray) -> tuple[int, tuple[int, ...] | None]:
    """Number of NaN/Inf values and the index of the first one (None when there are none)."""
    bad = ~np.isfinite(data)
    count = int(bad.sum())
    return count, (tuple(int(i) for i in np.argwhere(bad)[0]) if count else None)


def handle_nonfinite(data: np.ndarray, source: str, fill_value: float, fill: bool) -> tuple[np.ndarray, int]:
    """``data`` unchanged when all finite; with ``fill`` a copy with NaN/Inf replaced by ``fill_value`` and the
    count; otherwise :class:`IntensityError` naming the count and the first position."""
    count, first = nonfinite_count(data)
    if not count:
        return data, 0
    if not fill:
        where = "voxel" if len(first) == 3 else "index"
        raise IntensityError(f"{source}: {count} non-finite voxel(s) (NaN/Inf), the first at {where} {first}; "
                             f"--fill_nonfinite replaces them with the background ({fill_value:g})")
    return np.where(np.isfinite(data), data, np.float32(fill_value)).astype(np.float32), count


@dataclass(frozen=True)
class IntensityReport:
    """How an input's head voxels sit in the training window (normalised units)."""

    head_voxels: int
    clipped_fraction: float
    spread: float
    scale_ratio: float          # spread / window width
    head_p99: float

    def as_dict(self) -> dict:
        return {k: float(v) if isinstance(v, float) else v for k, v in self.__dict__.items()}


def intensity_report(data: np.ndarray, mask: np.ndarray, window) -> IntensityReport:
    """Clip fraction and scale of the voxels under ``mask`` against ``window`` = (lo, hi)."""
    lo, hi = float(window[0]), float(window[1])
    head = np.asarray(data, dtype=np.float32)[mask]
    if head.size == 0:
        return IntensityReport(0, 0.0, 0.0, 0.0, 0.0)
    clipped = float(np.mean((head < lo) | (head > hi)))
    p1, p99 = (float(v) for v in np.percentile(head, [1, 99]))
    return IntensityReport(int(head.size), clipped, p99 - p1, (p99 - p1) / (hi - lo), p99)


def _cause(kind: str | None, method: str, larger: bool, letter: str) -> str:
    """The likely cause of a scale mismatch and the flag that fixes it."""
    if method == "suv":
        return ("is the input in Bq/ml? check --suv_factor (SUV = value x weight_g / dose_Bq) or the JSON sidecar"
                if larger else "is the SUV factor applied twice, or the input not in Bq/ml? check --suv_factor")
    if kind == "PET":
        return (f"PET in other units than training (e.g. Bq/ml): rescale it, or prepare with "
                f"--normalise_{letter}=suv or percentile and retrain")
    if kind == "MR" or kind is None:
        return (f"scanner units differ from the training data's: prepare with --normalise_{letter}=zscore "
                f"(or percentile) and retrain, so any scale is accepted")
    return "CT not in HU? (e.g. stored without RescaleSlope/Intercept, or rescaled to [0, 1])"


def check_intensity(report: IntensityReport, window, *, source: str, kind: str | None, method: str,
                    letter: str) -> None:
    """Raise :class:`IntensityError` when ``report`` is off the training window (see the module docstring)."""
    lo, hi = float(window[0]), float(window[1])
    if report.head_voxels == 0:
        raise IntensityError(f"{source}: no head voxels found (the image is empty or constant); {FORCE_HINT}")
    units = f"training window [{lo:g}, {hi:g}]" + ("" if method == "none" else f" ({method} units)")
    ratio = report.scale_ratio
    if ratio > SCALE_TOLERANCE or ratio < 1.0 / SCALE_TOLERANCE:
        larger = ratio > 1
        factor = ratio if larger else 1.0 / max(ratio, 1e-30)
        raise IntensityError(f"{source}: intensities are ~{factor:,.0f}x {'larger' if larger else 'smaller'} than "
                             f"the {units} (head 1st-99th percentile spread {report.spread:.4g}); "
                             f"{_cause(kind, method, larger, letter)}; {FORCE_HINT}")
    if report.clipped_fraction > MAX_CLIPPED_FRACTION:
        larger = report.head_p99 > hi
        raise IntensityError(f"{source}: {report.clipped_fraction:.1%} of head voxels lie outside the {units} "
                             f"(limit {MAX_CLIPPED_FRACTION:.0%}) and would be clipped; "
                             f"{_cause(kind, method, larger, letter)}; {FORCE_HINT}")
