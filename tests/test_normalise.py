"""Normalisation rules, their record in stores, and the intensity / non-finite checks before translation."""

import h5py
import numpy as np
import pytest

from cycle_medgan_tf.data import intensity, normalise
from cycle_medgan_tf.data.intensity import IntensityError
from cycle_medgan_tf.data.normalise import Normalisation, NormalisationError, Scaling, parse_normalisation
from cycle_medgan_tf.data.store import open_store
from cycle_medgan_tf.data.validate import validate_store
from cycle_medgan_tf.data.volumes import Volume
from tests.conftest import write_phantom_store


def head(shape=(40, 40, 12), scale=1.0, offset=0.0, seed=0):
    """A bright ellipsoid with texture on a zero background, times ``scale`` plus ``offset`` inside."""
    rng = np.random.default_rng(seed)
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    r2 = np.sum(((idx - (np.array(shape) - 1) / 2) / (np.array(shape) * 0.35)) ** 2, axis=-1)
    inside = r2 <= 1
    values = 100 + 40 * np.sin(idx[..., 0] / 3.0) + rng.normal(0, 5, shape)
    return np.where(inside, values * scale + offset, 0.0).astype(np.float32), inside


def test_parse_and_records():
    assert parse_normalisation("zscore") == Normalisation("zscore")
    assert parse_normalisation("percentile:99") == Normalisation("percentile", 99.0)
    assert parse_normalisation("") == normalise.NONE
    for bad, message in (("gamma", "unknown normalisation"), ("zscore:3", "only percentile takes a value"),
                         ("percentile:x", "needs a number"), ("percentile:20", r"in \[50, 100\]")):
        with pytest.raises(NormalisationError, match=message):
            parse_normalisation(bad, "normalise_a")
    assert normalise.from_record(None) == normalise.NONE and normalise.from_record({}) == normalise.NONE
    assert normalise.from_record('{"method": "percentile", "percentile": 98.0}') == Normalisation("percentile", 98)
    assert normalise.from_record(Normalisation("zscore").as_dict()).method == "zscore"
    with pytest.raises(NormalisationError):
        normalise.from_record('{"nomethod": 1}')


def test_modality_rules():
    Normalisation("suv").check_modality("PET", "PET", "normalise_a")
    with pytest.raises(NormalisationError, match="--normalise_b=suv needs a PET domain"):
        Normalisation("suv").check_modality("MR", "MR", "normalise_b")
    with pytest.raises(NormalisationError, match="CT is already in physical units"):
        Normalisation("zscore").check_modality("CT", "CT", "normalise_a")


def test_head_mask_ignores_scale_and_fills_holes():
    data, inside = head()
    data[20, 20, 6] = 0.0                      # a dark hole inside the head
    mask = normalise.head_mask(data)
    assert mask[20, 20, 6] and np.mean(mask == inside) > 0.99
    np.testing.assert_array_equal(normalise.head_mask(data * 1000.0), mask)
    assert not normalise.head_mask(np.zeros((4, 4, 4))).any()


def test_per_volume_methods_are_invariant_to_scanner_scale():
    data, inside = head()
    rescaled, _ = head(scale=37.0, offset=0.0)
    z = Normalisation("zscore")
    a, b = z.fit(data), z.fit(rescaled)
    np.testing.assert_allclose(a.forward(data), b.forward(rescaled), atol=1e-4)
    normalised = a.forward(data)[normalise.head_mask(data)]
    assert abs(normalised.mean()) < 1e-3 and abs(normalised.std() - 1) < 1e-3
    p = Normalisation("percentile", 99.5)
    pa = p.fit(data)
    assert abs(np.percentile(data[normalise.head_mask(data)], 99.5) / pa.scale - 1) < 1e-6
    np.testing.assert_allclose(pa.forward(data), p.fit(rescaled).forward(rescaled), atol=1e-5)
    np.testing.assert_allclose(pa.inverse(pa.forward(data)), data, rtol=1e-5, atol=1e-3)
    assert normalise.NONE.fit(data) == normalise.IDENTITY
    with pytest.raises(NormalisationError, match="no head found"):
        z.fit(np.ones((5, 5, 5)))
    with pytest.raises(NormalisationError, match="percentile normalisation needs positive"):
        p.fit(-data)


def test_output_scaling_rules():
    src = Scaling(10.0, 5.0)
    assert normalise.output_scaling(Normalisation("zscore"), Normalisation("zscore"), src, True) == \
        (src, "the input's units")
    assert normalise.output_scaling(Normalisation("suv"), normalise.NONE, src, False)[0] == normalise.IDENTITY
    scaling, units = normalise.output_scaling(normalise.NONE, Normalisation("zscore"), src, False)
    assert scaling is None and "not invertible" in units


def test_normalise_volume_refuses_or_fills_nonfinite():
    data, _ = head()
    data[3, 4, 5] = np.nan
    data[7, 8, 9] = np.inf
    volume = Volume(data, np.eye(4), "", "scan.nii")
    with pytest.raises(IntensityError, match=r"scan.nii: 2 non-finite voxel\(s\) \(NaN/Inf\), the first at voxel "
                                             r"\(3, 4, 5\); --fill_nonfinite replaces them"):
        normalise.normalise_volume(volume, Normalisation("zscore"), "MR")
    loaded = normalise.normalise_volume(volume, Normalisation("zscore"), "MR", fill_nonfinite=True)
    assert loaded.nonfinite_filled == 2 and np.all(np.isfinite(loaded.volume.data))
    assert loaded.background == pytest.approx(float(loaded.scaling.forward(0.0)))


def test_intensity_check_names_cause_and_flag():
    data, _ = head()
    mask = normalise.head_mask(data)
    ok = intensity.intensity_report(data, mask, (0, 200))
    intensity.check_intensity(ok, (0, 200), source="x", kind="MR", method="none", letter="a")
    bq = intensity.intensity_report(data * 300, mask, (0, 6))
    with pytest.raises(IntensityError, match=r"~[\d,]+x larger than the training window \[0, 6\] \(suv units\).*"
                                             r"Bq/ml\? check --suv_factor.*--force"):
        intensity.check_intensity(bq, (0, 6), source="x", kind="PET", method="suv", letter="a")
    with pytest.raises(IntensityError, match=r"larger.*--normalise_b=zscore"):
        intensity.check_intensity(intensity.intensity_report(data, mask, (0, 1.6)), (0, 1.6), source="x",
                                  kind="MR", method="none", letter="b")
    small = intensity.intensity_report(data / 1000, mask, (-1000, 2000))
    with pytest.raises(IntensityError, match=r"smaller than the training window.*CT not in HU"):
        intensity.check_intensity(small, (-1000, 2000), source="x", kind="CT", method="none", letter="a")
    clipped = intensity.intensity_report(data, mask, (0, 120))      # same scale, but a share above the window
    assert 0.02 < clipped.clipped_fraction < 0.9 and 1 / 30 < clipped.scale_ratio < 30
    with pytest.raises(IntensityError, match=r"of head voxels lie outside the training window \[0, 120\] "
                                             r"\(limit 2%\)"):
        intensity.check_intensity(clipped, (0, 120), source="x", kind="PET", method="none", letter="a")


def test_store_records_normalisation_and_old_stores_mean_none(tmp_path):
    old = write_phantom_store(tmp_path / "old.h5")
    with open_store(old) as store:
        assert store.normalisation("A") == {"method": "none"} and "normalisation" not in store.summary()
    with h5py.File(old, "a") as f:
        f["train/A"].attrs["normalisation"] = '{"method": "zscore"}'
    with open_store(old) as store:
        assert store.normalisation("A") == {"method": "zscore"} and "normalisation A zscore" in store.summary()
    with h5py.File(old, "a") as f:
        f["train/B"].attrs["normalisation"] = '{"method": "gamma"}'
    assert any("normalisation on /train/B is not usable" in p for p in validate_store(old))
