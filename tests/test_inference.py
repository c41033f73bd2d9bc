"""Translation in physical units: SUV models, intensity and non-finite refusals, the output sidecar, the Python
API, and a zscore round trip through prepare -> train (smoke) -> translate."""

import json

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from cycle_medgan_tf import Translator
from cycle_medgan_tf.config import resolve_config
from cycle_medgan_tf.data import volumes
from cycle_medgan_tf.data.intensity import IntensityError
from cycle_medgan_tf.data.prepare import prepare_store
from cycle_medgan_tf.data.volumes import Volume
from cycle_medgan_tf.export import export_translators
from tests.test_prepare import grid_affine, pet_head
from tests.test_suv import BIDS, expected_factor, pet_series
from tests.test_translate import assert_one_line_error, identity_model, run_cli

SIZE = 64


def export_identity(run_dir, domain_a, domain_b, window_a, window_b, normalisation_a, normalisation_b):
    manifest = {"model": "cyclegan", "task": "test", "domain_a": domain_a, "domain_b": domain_b,
                "window_a": list(window_a), "window_b": list(window_b), "image_size": SIZE, "channels": 1,
                "pixel_spacing_mm": 1.0, "normalisation_a": normalisation_a, "normalisation_b": normalisation_b}
    export_translators(run_dir, {"a2b": identity_model(), "b2a": identity_model()}, manifest)
    return str(run_dir)


@pytest.fixture(scope="module")
def suv_run(tmp_path_factory):
    """Identity in model range from PET in SUV [0, 10] to CT [-1000, 2000]: HU = 300 * SUV - 1000."""
    return export_identity(tmp_path_factory.mktemp("suv_run"), "PET", "CT", (0, 10), (-1000, 2000),
                           {"method": "suv"}, {"method": "none"})


@pytest.fixture(scope="module")
def zscore_run(tmp_path_factory):
    """Identity between two zscore MR domains with the same window: the output is the input, in its own units."""
    return export_identity(tmp_path_factory.mktemp("z_run"), "MR_motion", "MR", (-3, 5), (-3, 5),
                           {"method": "zscore"}, {"method": "zscore"})


def bq_head(tmp_path, name="pet.nii.gz"):
    """A smooth PET head in Bq/ml (activity 2..6 SUV times 1 / the test factor)."""
    affine = grid_affine()
    data = pet_head(1, affine) / expected_factor(3600.0)
    return str(volumes.write_nifti(Volume(data.astype(np.float32), affine), tmp_path / name)), data


def test_bq_per_ml_input_to_an_suv_model_is_refused_with_the_hint(suv_run, tmp_path):
    path, _ = bq_head(tmp_path)
    out = tmp_path / "ct.nii.gz"
    assert_one_line_error(run_cli(f"--model_dir={suv_run}", f"--input={path}", f"--output={out}"),
                          "the model works in SUV but this NIfTI has no SUV information; pass --suv_factor=F")
    result = run_cli(f"--model_dir={suv_run}", f"--input={path}", f"--output={out}", "--suv_factor=1")
    assert_one_line_error(result, "larger than the training window [0, 10] (suv units)")
    assert "is the input in Bq/ml? check --suv_factor" in result.stderr and "--force" in result.stderr
    assert not out.exists()


def test_suv_from_factor_sidecar_and_dicom_agree(suv_run, tmp_path):
    path, data = bq_head(tmp_path)
    factor = float(expected_factor(3600.0))
    out = tmp_path / "ct.nii.gz"
    result = run_cli(f"--model_dir={suv_run}", f"--input={path}", f"--output={out}", f"--suv_factor={factor!r}")
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "ct.json").read_text())
    assert record["suv_factor"] == pytest.approx(factor) and record["output_units"] == "physical"
    assert record["source_normalisation"] == {"method": "suv"} and record["nonfinite_filled"] == 0
    ct = nib.load(out).get_fdata()
    core = ndimage.binary_erosion(pet_head(1, grid_affine()) > 0, np.ones((3, 3, 1)), iterations=2)  # in-plane
    error = np.abs(ct[core] - (300 * data[core] * factor - 1000))       # HU, after two in-plane resamplings
    assert np.median(error) < 2.0 and error.max() < 8.0  # a wrong SUV factor would be off by hundreds
    t = Translator.load(suv_run)
    (tmp_path / "pet.json").write_text(json.dumps(BIDS))                                   # SUV from a sidecar
    t.translate_volume(path, tmp_path / "from_sidecar.nii.gz")
    np.testing.assert_allclose(nib.load(tmp_path / "from_sidecar.nii.gz").get_fdata(), ct, rtol=1e-4, atol=0.05)
    series = pet_series(tmp_path, "dicom")                                                 # from the DICOM headers
    t.translate_volume(series, tmp_path / "from_dicom.nii.gz", force=True)  # noise, not a head: skip the check
    by_hand = Volume(volumes.read_volume(series).data * np.float32(factor), volumes.read_volume(series).affine)
    hand = volumes.write_nifti(by_hand, tmp_path / "suv_by_hand.nii.gz")
    t.translate_volume(hand, tmp_path / "from_hand.nii.gz", suv_factor=1.0, force=True)
    np.testing.assert_allclose(nib.load(tmp_path / "from_dicom.nii.gz").get_fdata(),
                               nib.load(tmp_path / "from_hand.nii.gz").get_fdata(), rtol=1e-4, atol=0.05)


def test_dicom_without_weight_is_refused(suv_run, tmp_path):
    series = pet_series(tmp_path, PatientWeight=True)
    assert_one_line_error(run_cli(f"--model_dir={suv_run}", f"--input={series}", f"--output={tmp_path / 'o.nii'}"),
                          "missing or invalid PatientWeight")


def test_nonfinite_voxels_are_refused_or_filled_and_counted(zscore_run, tmp_path):
    affine = grid_affine()
    data = pet_head(2, affine) * 700
    data[5, 6, 7] = np.nan
    data[30, 20, 10] = np.inf
    path = volumes.write_nifti(Volume(data, affine), tmp_path / "mr.nii.gz")
    out = tmp_path / "out.nii.gz"
    assert_one_line_error(run_cli(f"--model_dir={zscore_run}", f"--input={path}", f"--output={out}"),
                          "2 non-finite voxel(s) (NaN/Inf), the first at voxel (5, 6, 7); --fill_nonfinite")
    result = run_cli(f"--model_dir={zscore_run}", f"--input={path}", f"--output={out}", "--fill_nonfinite")
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "out.json").read_text())
    assert record["nonfinite_filled"] == 2 and record["output_units"] == "the input's units"
    assert np.all(np.isfinite(nib.load(out).get_fdata()))
    assert_one_line_error(run_cli(f"--model_dir={zscore_run}", f"--input={path}", f"--output={out}",
                                  "--fill_nonfinite"), "already exists (use --overwrite")


def test_api_slices_in_physical_units(zscore_run, suv_run):
    t = Translator.load(zscore_run)
    assert t.pixel_spacing_mm == 1.0 and t.domains["source_normalisation"].method == "zscore"
    slices = np.moveaxis(pet_head(3, grid_affine()), 2, 0)[5:15] * 40.0       # (10, 40, 48), any scanner scale
    out = t(slices)
    assert out.shape == slices.shape
    inside = slices > 0
    np.testing.assert_allclose(out[inside], slices[inside], rtol=1e-4, atol=1e-3)  # identity, back in input units
    np.testing.assert_allclose(t(slices * 1024.0), out * 1024.0, rtol=1e-5, atol=1e-2)
    assert t(slices[7]).shape == slices[7].shape
    with pytest.raises(IntensityError, match=r"800 non-finite voxel\(s\) \(NaN/Inf\), the first at voxel \(0, 0, 0\)"):
        t(np.where(np.arange(48) < 2, np.nan, slices))
    s = Translator.load(suv_run)
    bq = slices / 40.0 / expected_factor(3600.0)
    with pytest.raises(IntensityError, match="Bq/ml"):
        s(bq)
    np.testing.assert_allclose(s(bq, suv_factor=float(expected_factor(3600.0)))[inside],
                               300 * slices[inside] / 40.0 - 1000, atol=0.05)


def mr_head(seed, scale):
    """An MR-like head on the test grid, in a scanner scale of its own."""
    return Volume(pet_head(seed, grid_affine()) * np.float32(scale), grid_affine())


def test_zscore_round_trip_through_prepare_train_and_translate(tmp_path):
    from cycle_medgan_tf.catalogue import trainer_class
    from cycle_medgan_tf.training.trainer import run_training

    paths = {}
    for seed, scale in ((1, 1.0), (2, 350.0), (3, 20.0), (4, 900.0), (5, 3.0), (6, 70.0), (9, 1.0)):
        paths[seed] = str(volumes.write_nifti(mr_head(seed, scale), tmp_path / f"m{seed}.nii.gz"))
    store = prepare_store(tmp_path / "mr.h5", task="mr_motion", domain_a="MR_motion", domain_b="MR",
                          train_a=[paths[1], paths[2]], train_b=[paths[3], paths[4]],
                          val_pairs=[(paths[5], paths[6])], size=SIZE, normalise_a="zscore", normalise_b="zscore",
                          log=lambda m: None)
    cfg = resolve_config("cyclegan", "smoke", dict(data=str(store), workdir=str(tmp_path / "run"), steps=2))
    assert run_training(trainer_class("cyclegan"), cfg, log=lambda m: None)["status"] == "completed"
    manifest = json.loads((tmp_path / "run" / "export" / "manifest.json").read_text())
    assert manifest["normalisation_a"] == manifest["normalisation_b"] == {"method": "zscore"}
    t = Translator.load(tmp_path / "run")
    big = volumes.write_nifti(mr_head(9, 1024.0), tmp_path / "m9_big.nii.gz")  # 2^10: normalises bit-identically
    t.translate_volume(paths[9], tmp_path / "small_out.nii.gz")
    t.translate_volume(big, tmp_path / "big_out.nii.gz")
    small_out, big_out = (nib.load(tmp_path / n).get_fdata() for n in ("small_out.nii.gz", "big_out.nii.gz"))
    assert np.ptp(small_out) > 0
    np.testing.assert_allclose(big_out, 1024.0 * small_out, rtol=1e-5, atol=1e-5 * np.abs(big_out).max())
    record = json.loads((tmp_path / "big_out.json").read_text())
    assert record["input_scaling"]["scale"] == pytest.approx(
        1024 * json.loads((tmp_path / "small_out.json").read_text())["input_scaling"]["scale"], rel=1e-6)
