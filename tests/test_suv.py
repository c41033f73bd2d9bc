"""Body-weight SUV from DICOM PET series built with known dose, weight, half-life and times, and from NIfTI
sidecars / --suv_factor; every missing attribute is refused by name."""

import json
import os

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from cycle_medgan_tf.data import suv, volumes
from cycle_medgan_tf.data.suv import SUVError
from cycle_medgan_tf.data.volumes import Volume

SHAPE = (12, 10, 5)
DOSE_BQ = 370e6
WEIGHT_KG = 72.5
HALF_LIFE_S = 6586.2
INJECTION = "093000"            # 09:30:00
SERIES = "103000"               # 10:30:00, one hour later


def affine():
    a = np.diag([2.0, 2.0, 3.0, 1.0])
    a[:3, 3] = [-11.0, -9.0, -6.0]
    return a


def bqml(seed=0):
    return np.random.default_rng(seed).uniform(0, 30000, SHAPE).astype(np.float32)


def pet_series(tmp_path, name="pet", decay="START", **drop):
    """A PET series in Bq/ml with the SUV attributes set; slice k acquired 40 s after slice k-1 from SERIES."""
    series = volumes.write_dicom_series(Volume(bqml(), affine(), "PET"), tmp_path / name)
    for path in sorted(os.listdir(series)):
        full = os.path.join(series, path)
        ds = pydicom.dcmread(full)
        k = int(ds.InstanceNumber) - 1
        drug = Dataset()
        drug.RadionuclideTotalDose = f"{DOSE_BQ:.6g}"
        drug.RadionuclideHalfLife = f"{HALF_LIFE_S}"
        drug.RadiopharmaceuticalStartTime = INJECTION
        ds.RadiopharmaceuticalInformationSequence = Sequence([drug])
        ds.PatientWeight = f"{WEIGHT_KG}"
        ds.SeriesDate = ds.AcquisitionDate = "20240301"
        ds.SeriesTime = SERIES
        ds.AcquisitionTime = clock(10 * 3600 + 30 * 60 + 40 * k)
        ds.DecayCorrection = decay
        ds.CorrectedImage = ["DECY", "ATTN"] if decay != "NONE" else ["ATTN"]
        for keyword in drop:
            if keyword in ("RadionuclideTotalDose", "RadionuclideHalfLife", "RadiopharmaceuticalStartTime"):
                delattr(drug, keyword)
            else:
                delattr(ds, keyword)
        ds.save_as(full)
    return series


def clock(seconds: int) -> str:
    """DICOM TM HHMMSS of a number of seconds after midnight."""
    return f"{seconds // 3600:02d}{seconds // 60 % 60:02d}{seconds % 60:02d}"


def expected_factor(decay_s):
    return WEIGHT_KG * 1000.0 / (DOSE_BQ * 2.0 ** (-np.asarray(decay_s, np.float64) / HALF_LIFE_S))



def edit_series(series, edit) -> None:
    """Apply ``edit(dataset)`` to every file of a DICOM series and save it in place."""
    for name in os.listdir(series):
        path = os.path.join(series, name)
        ds = pydicom.dcmread(path)
        edit(ds)
        ds.save_as(path)

def test_clock():
    assert [clock(10 * 3600 + 30 * 60 + 40 * k) for k in range(3)] == ["103000", "103040", "103120"]


def test_start_decay_correction_uses_the_series_time(tmp_path):
    series = pet_series(tmp_path)
    factors = suv.dicom_suv_factors(series)
    np.testing.assert_allclose(factors, expected_factor(3600.0), rtol=1e-4)
    volume = volumes.read_volume(series)
    converted, mean_factor = suv.to_suv(volume, series)
    np.testing.assert_allclose(converted.data, volume.data * expected_factor(3600.0), rtol=1e-4)
    assert abs(mean_factor / expected_factor(3600.0) - 1) < 1e-4
    assert abs(factors[0] / 2.862058e-4 - 1) < 1e-4  # by hand: 72500 g / (370 MBq * 2^(-3600 / 6586.2))


def test_admin_decay_correction_does_not_decay_the_dose(tmp_path):
    factors = suv.dicom_suv_factors(pet_series(tmp_path, decay="ADMIN"))
    np.testing.assert_allclose(factors, WEIGHT_KG * 1000.0 / DOSE_BQ, rtol=1e-4)


def test_no_decay_correction_decays_to_each_slice_time(tmp_path):
    series = pet_series(tmp_path, decay="NONE")
    headers = volumes.read_dicom_headers(series)
    order = [int(ds.InstanceNumber) - 1 for ds in headers]
    factors = suv.dicom_suv_factors(series)
    np.testing.assert_allclose(factors, expected_factor([3600.0 + 40 * k for k in order]), rtol=1e-4)
    assert np.ptp(factors) > 0


def test_start_uses_the_earliest_acquisition_when_the_series_time_is_later(tmp_path):
    series = pet_series(tmp_path)
    edit_series(series, lambda ds: setattr(ds, "SeriesTime", "110000"))   # re-stamped after reconstruction
    np.testing.assert_allclose(suv.dicom_suv_factors(series), expected_factor(3600.0), rtol=1e-4)


def test_injection_datetime_takes_precedence(tmp_path):
    series = pet_series(tmp_path)
    edit_series(series, lambda ds: setattr(ds.RadiopharmaceuticalInformationSequence[0],
                                           "RadiopharmaceuticalStartDateTime", "20240301100000"))
    np.testing.assert_allclose(suv.dicom_suv_factors(series), expected_factor(1800.0), rtol=1e-4)


@pytest.mark.parametrize("drop,message", [
    ("PatientWeight", "missing or invalid PatientWeight"),
    ("RadionuclideTotalDose", "missing or invalid RadionuclideTotalDose"),
    ("RadionuclideHalfLife", "missing or invalid RadionuclideHalfLife"),
    ("RadiopharmaceuticalStartTime", "missing RadiopharmaceuticalStart date or time"),
    ("DecayCorrection", "missing or unknown DecayCorrection"),
    ("RadiopharmaceuticalInformationSequence", "missing RadiopharmaceuticalInformationSequence"),
])
def test_missing_attributes_are_refused_by_name(tmp_path, drop, message):
    series = pet_series(tmp_path, **{drop: True})
    with pytest.raises(SUVError, match=message) as info:
        suv.dicom_suv_factors(series)
    assert "\n" not in str(info.value) and str(series) in str(info.value)


def test_units_decide(tmp_path):
    series = pet_series(tmp_path)
    for units, outcome in (("GML", "ones"), ("CNTS", "refused")):
        edit_series(series, lambda ds: setattr(ds, "Units", units))
        if outcome == "ones":
            np.testing.assert_array_equal(suv.dicom_suv_factors(series), 1.0)
        else:
            with pytest.raises(SUVError, match="Units is 'CNTS'; SUV needs BQML"):
                suv.dicom_suv_factors(series)


def test_injection_after_the_scan_is_refused(tmp_path):
    series = pet_series(tmp_path)
    edit_series(series, lambda ds: setattr(ds.RadiopharmaceuticalInformationSequence[0],
                                           "RadiopharmaceuticalStartTime", "120000"))
    with pytest.raises(SUVError, match="after the acquisition"):
        suv.dicom_suv_factors(series)


BIDS = {"Units": "Bq/mL", "InjectedRadioactivity": DOSE_BQ / 1e6, "InjectedRadioactivityUnits": "MBq",
        "BodyWeight": WEIGHT_KG, "ImageDecayCorrected": True, "ImageDecayCorrectionTime": 3600.0,
        "InjectionStart": 0.0, "TracerRadionuclide": "F18"}


def nifti_with_sidecar(tmp_path, meta):
    path = volumes.write_nifti(Volume(bqml(), affine()), tmp_path / "pet.nii.gz")
    if meta is not None:
        (tmp_path / "pet.json").write_text(json.dumps(meta))
    return path


def test_nifti_sidecar_gives_the_same_factor_as_dicom(tmp_path):
    path = nifti_with_sidecar(tmp_path, BIDS)
    assert suv.sidecar_path(path) == str(tmp_path / "pet.json")
    assert abs(suv.nifti_suv_factor(path) / expected_factor(3600.0) - 1) < 1e-4
    kilo = dict(BIDS, Units="kBq/mL", InjectedRadioactivity=DOSE_BQ / 1e3, InjectedRadioactivityUnits="kBq",
                RadionuclideHalfLife=HALF_LIFE_S, TracerRadionuclide="unknown")
    assert abs(suv.sidecar_suv_factor(kilo, "x") / (1000 * expected_factor(3600.0)) - 1) < 1e-4
    assert suv.sidecar_suv_factor({"Units": "g/ml"}, "x") == 1.0


def test_suv_factor_flag_and_refusals_for_nifti(tmp_path):
    path = nifti_with_sidecar(tmp_path, None)
    assert suv.nifti_suv_factor(path, 2e-4) == 2e-4
    converted, factor = suv.to_suv(volumes.read_volume(path), path, 2e-4)
    np.testing.assert_allclose(converted.data, bqml() * np.float32(2e-4), rtol=1e-6)
    with pytest.raises(SUVError, match=r"no SUV information; pass --suv_factor=F .* or a JSON sidecar"):
        suv.nifti_suv_factor(path)
    with pytest.raises(SUVError, match="--suv_factor must be a positive number"):
        suv.nifti_suv_factor(path, -1.0)
    for change, message in ((dict(BodyWeight=None), "BodyWeight is not a number"),
                            (dict(ImageDecayCorrected=False), "ImageDecayCorrected is not true"),
                            (dict(Units="counts"), "Units is 'counts'"),
                            (dict(TracerRadionuclide="Xe133"), "known TracerRadionuclide")):
        with pytest.raises(SUVError, match=message):
            suv.sidecar_suv_factor(dict(BIDS, **change), "sidecar")
    meta = dict(BIDS)
    del meta["InjectedRadioactivity"]
    with pytest.raises(SUVError, match="missing InjectedRadioactivity"):
        suv.sidecar_suv_factor(meta, "sidecar")
