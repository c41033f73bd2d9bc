"""Body-weight SUV for PET: ``SUV = C * weight_g / dose_Bq``, the dose decayed to the time the image refers to.

DICOM series (per slice, from the standard attributes): Units (BQML, or GML when already SUV), PatientWeight (kg),
RadiopharmaceuticalInformationSequence[0] RadionuclideTotalDose (Bq), RadionuclideHalfLife (s) and
RadiopharmaceuticalStartDateTime (or RadiopharmaceuticalStartTime on the series date), and DecayCorrection:

* ``START``: the image is decay-corrected to the start of the acquisition, SeriesDate/SeriesTime (the earliest
  AcquisitionDate/Time when the series time is missing or later than that, as some scanners re-stamp it);
* ``ADMIN``: decay-corrected to the injection, so the dose is not decayed;
* ``NONE``: not decay-corrected; each slice's dose is decayed to its own AcquisitionDate/AcquisitionTime.

NIfTI files: ``--suv_factor=F`` (SUV = value x F), else a JSON sidecar beside the file (``name.json`` for
``name.nii.gz``) with BIDS PET fields: Units (Bq/mL, kBq/mL; g/mL or SUV when already SUV), InjectedRadioactivity
(+ InjectedRadioactivityUnits, default MBq), BodyWeight (kg), ImageDecayCorrected = true,
ImageDecayCorrectionTime and InjectionStart (s, relative to the same time zero), and RadionuclideHalfLife (s) or
TracerRadionuclide (F18, C11, N13, O15, Ga68). Anything missing is refused with the attribute named.
"""

from __future__ import annotations

import datetime
import json
import os

import numpy as np

from cycle_medgan_tf.data import volumes
from cycle_medgan_tf.data.volumes import VolumeError

HALF_LIFE_S = {"F18": 6586.2, "C11": 1221.84, "N13": 597.9, "O15": 122.24, "GA68": 4062.6}  # NNDC NuDat values
ACTIVITY_UNITS_BQ = {"BQ": 1.0, "KBQ": 1e3, "MBQ": 1e6, "GBQ": 1e9, "MCI": 3.7e7}
CONCENTRATION_UNITS = {"BQML": 1.0, "BQ/ML": 1.0, "KBQ/ML": 1e3}
SUV_UNITS = ("GML", "G/ML", "SUV", "SUVBW")
FACTOR_HINT = "pass --suv_factor=F (SUV = value x F) or a JSON sidecar"


class SUVError(VolumeError):
    """SUV cannot be computed for an input; the message names the missing or bad attribute."""


def decayed_dose_factor(weight_kg: float, dose_bq: float, half_life_s: float, decay_s) -> np.ndarray:
    """``weight_g / (dose_bq * 2 ** (-decay_s / half_life_s))``: the SUV factor after ``decay_s`` seconds."""
    return float(weight_kg) * 1000.0 / (float(dose_bq) * np.exp2(-np.asarray(decay_s, np.float64) / half_life_s))


# ----------------------------------------------------------------------------------------------------- DICOM

def _positive(ds, keyword: str, where: str, hint: str) -> float:
    value = ds.get(keyword)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not number > 0:
        raise SUVError(f"{where}: missing or invalid {keyword} ({value!r}); cannot compute SUV ({hint})")
    return number


def _datetime(date, time, where: str, what: str) -> datetime.datetime:
    from pydicom.valuerep import DA, TM

    if not date or not time:
        raise SUVError(f"{where}: missing {what} date or time; cannot compute SUV")
    try:
        return datetime.datetime.combine(DA(str(date)), TM(str(time)))
    except (ValueError, TypeError) as exc:
        raise SUVError(f"{where}: unreadable {what} date/time {date!r} {time!r} ({exc})") from None


def _injection_time(ds, drug, where: str) -> datetime.datetime:
    from pydicom.valuerep import DT

    stamp = drug.get("RadiopharmaceuticalStartDateTime")
    if stamp:
        try:
            return DT(str(stamp)).replace(tzinfo=None)
        except (ValueError, TypeError) as exc:
            raise SUVError(f"{where}: unreadable RadiopharmaceuticalStartDateTime {stamp!r} ({exc})") from None
    date = ds.get("SeriesDate") or ds.get("AcquisitionDate") or ds.get("StudyDate")
    return _datetime(date, drug.get("RadiopharmaceuticalStartTime"), where, "RadiopharmaceuticalStart")


def _acquisition_time(ds, where: str) -> datetime.datetime:
    return _datetime(ds.get("AcquisitionDate") or ds.get("SeriesDate"), ds.get("AcquisitionTime"), where,
                     "Acquisition")


def _decay_seconds(headers: list, where: str, injection: datetime.datetime) -> np.ndarray:
    """Seconds from injection to the time each slice's activity refers to (see the module docstring)."""
    mode = str(headers[0].get("DecayCorrection", "") or "").strip().upper()
    if mode == "ADMIN":
        return np.zeros(len(headers))
    if mode == "NONE":
        times = [_acquisition_time(ds, where) for ds in headers]
    elif mode == "START":
        acquired = [_acquisition_time(ds, where) for ds in headers if ds.get("AcquisitionTime")]
        start = None
        if headers[0].get("SeriesTime"):
            start = _datetime(headers[0].get("SeriesDate") or headers[0].get("AcquisitionDate"),
                              headers[0].get("SeriesTime"), where, "Series")
        if acquired and (start is None or start > min(acquired)):
            start = min(acquired)
        if start is None:
            raise SUVError(f"{where}: missing SeriesTime and AcquisitionTime; cannot compute SUV")
        times = [start] * len(headers)
    else:
        raise SUVError(f"{where}: missing or unknown DecayCorrection {mode!r} (START, ADMIN or NONE); "
                       f"cannot compute SUV")
    decay = np.array([(t - injection).total_seconds() for t in times])
    if decay.min() < 0:
        raise SUVError(f"{where}: the injection time {injection} is after the acquisition ({min(times)}); "
                       f"check RadiopharmaceuticalStartTime")
    return decay


def dicom_suv_factors(directory) -> np.ndarray:
    """Per-slice SUV factors (in :func:`volumes.read_dicom_series` slice order) of a PET DICOM series."""
    where = os.fspath(directory)
    headers = volumes.read_dicom_headers(where)
    first = headers[0]
    units = str(first.get("Units", "") or "").strip().upper()
    if units in SUV_UNITS:
        return np.ones(len(headers))
    if units != "BQML":
        raise SUVError(f"{where}: PET Units is {units or 'missing'!r}; SUV needs BQML (Bq/ml) or GML (SUV)")
    weight = _positive(first, "PatientWeight", where, "the patient's weight in kg is needed")
    sequence = first.get("RadiopharmaceuticalInformationSequence")
    if not sequence:
        raise SUVError(f"{where}: missing RadiopharmaceuticalInformationSequence (dose, half-life, injection "
                       f"time); cannot compute SUV")
    drug = sequence[0]
    dose = _positive(drug, "RadionuclideTotalDose", where, "the injected dose in Bq is needed")
    half_life = _positive(drug, "RadionuclideHalfLife", where, "the half-life in s is needed")
    decay = _decay_seconds(headers, where, _injection_time(first, drug, where))
    return decayed_dose_factor(weight, dose, half_life, decay)


# ----------------------------------------------------------------------------------------------------- NIfTI

def sidecar_path(path) -> str:
    """``name.json`` beside ``name.nii`` / ``name.nii.gz``."""
    path = os.fspath(path)
    return os.path.join(os.path.dirname(path), volumes.strip_nifti_suffix(os.path.basename(path)) + ".json")


def _sidecar_number(meta: dict, key: str, where: str) -> float:
    try:
        value = float(meta[key])
    except KeyError:
        raise SUVError(f"{where}: missing {key}; cannot compute SUV") from None
    except (TypeError, ValueError):
        raise SUVError(f"{where}: {key} is not a number ({meta[key]!r})") from None
    if not value >= 0 or not np.isfinite(value):
        raise SUVError(f"{where}: {key} must be a finite number >= 0, got {value}")
    return value


def _sidecar_half_life(meta: dict, where: str) -> float:
    if "RadionuclideHalfLife" in meta:
        return _sidecar_number(meta, "RadionuclideHalfLife", where)
    nuclide = str(meta.get("TracerRadionuclide", "")).replace("-", "").replace("^", "").upper()
    nuclide = nuclide[-2:] + nuclide[:-2] if nuclide[:1].isdigit() else nuclide   # 18F -> F18
    if nuclide not in HALF_LIFE_S:
        raise SUVError(f"{where}: needs RadionuclideHalfLife (s) or a known TracerRadionuclide "
                       f"({', '.join(HALF_LIFE_S)}), got {meta.get('TracerRadionuclide')!r}")
    return HALF_LIFE_S[nuclide]


def sidecar_suv_factor(meta: dict, where: str) -> float:
    """The SUV factor from BIDS PET sidecar fields (see the module docstring)."""
    units = str(meta.get("Units", "")).replace(" ", "").upper()
    if units in SUV_UNITS:
        return 1.0
    if units not in CONCENTRATION_UNITS:
        raise SUVError(f"{where}: Units is {meta.get('Units')!r}; SUV needs Bq/mL or kBq/mL (or g/mL if already SUV)")
    if meta.get("ImageDecayCorrected") is not True:
        raise SUVError(f"{where}: ImageDecayCorrected is not true; SUV from a sidecar needs a decay-corrected image "
                       f"(or pass --suv_factor)")
    dose_units = str(meta.get("InjectedRadioactivityUnits", "MBq")).upper()
    if dose_units not in ACTIVITY_UNITS_BQ:
        raise SUVError(f"{where}: unknown InjectedRadioactivityUnits {meta.get('InjectedRadioactivityUnits')!r}")
    dose = _sidecar_number(meta, "InjectedRadioactivity", where) * ACTIVITY_UNITS_BQ[dose_units]
    weight_key = "BodyWeight" if "BodyWeight" in meta else "PatientWeight"
    weight = _sidecar_number(meta, weight_key, where)
    decay = _sidecar_number(meta, "ImageDecayCorrectionTime", where) - float(meta.get("InjectionStart", 0.0))
    if not (dose > 0 and weight > 0 and decay >= 0):
        raise SUVError(f"{where}: needs InjectedRadioactivity > 0, {weight_key} > 0 and "
                       f"ImageDecayCorrectionTime >= InjectionStart")
    return float(decayed_dose_factor(weight, dose, _sidecar_half_life(meta, where), decay)
                 * CONCENTRATION_UNITS[units])


def nifti_suv_factor(path, suv_factor: float | None = None) -> float:
    """``suv_factor`` if given, else the factor from the file's JSON sidecar; refuse when neither exists."""
    if suv_factor is not None:
        if not (np.isfinite(suv_factor) and suv_factor > 0):
            raise SUVError(f"--suv_factor must be a positive number, got {suv_factor}")
        return float(suv_factor)
    sidecar = sidecar_path(path)
    if not os.path.isfile(sidecar):
        raise SUVError(f"{os.fspath(path)}: the model works in SUV but this NIfTI has no SUV information; "
                       f"{FACTOR_HINT} ({os.path.basename(sidecar)}, BIDS PET fields; 1 if already in SUV)")
    try:
        with open(sidecar, encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, ValueError) as exc:
        raise SUVError(f"{sidecar}: unreadable JSON sidecar ({exc})") from None
    if not isinstance(meta, dict):
        raise SUVError(f"{sidecar}: the JSON sidecar must hold an object")
    return sidecar_suv_factor(meta, sidecar)


def to_suv(volume: volumes.Volume, path, suv_factor: float | None = None) -> tuple[volumes.Volume, float]:
    """``volume`` (read from ``path``) in SUV, and its factor (the mean over slices for a DICOM series)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        if suv_factor is not None:
            factors = np.full(volume.shape[2], nifti_suv_factor(path, suv_factor))
        else:
            factors = dicom_suv_factors(path)
        data = volume.data * factors.astype(np.float32)[None, None, :]
        return volumes.Volume(data, volume.affine, volume.modality, volume.source), float(np.mean(factors))
    factor = nifti_suv_factor(path, suv_factor)
    return volumes.Volume(volume.data * np.float32(factor), volume.affine, volume.modality, volume.source), factor
