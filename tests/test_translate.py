"""Translating real volumes and slice stores with an exported model (identity models make the result known)."""

import os
import subprocess
import sys

import h5py
import nibabel as nib
import numpy as np
import pytest

from cycle_medgan_tf import translate
from cycle_medgan_tf.data import volumes
from cycle_medgan_tf.data.intensity import IntensityError
from cycle_medgan_tf.data.store import open_store, write_store
from cycle_medgan_tf.data.volumes import Volume
from cycle_medgan_tf.export import export_translators, load_translator

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = 64
SHAPE = (40, 48, 20)


def identity_model():
    import keras

    inputs = keras.Input((SIZE, SIZE, 1))
    # float32 whatever the global policy: an in-process training earlier in this worker may have left it at
    # mixed_bfloat16 (precision auto on a CPU with AVX512-BF16), which would round the known result
    outputs = keras.layers.Conv2D(1, 1, kernel_initializer="ones", bias_initializer="zeros", dtype="float32")(inputs)
    return keras.Model(inputs, outputs)


def export_identity(run_dir, domain_a, domain_b, window_a, window_b):
    manifest = {"model": "cyclegan", "task": "test", "domain_a": domain_a, "domain_b": domain_b,
                "window_a": list(window_a), "window_b": list(window_b), "image_size": SIZE, "channels": 1,
                "pixel_spacing_mm": 1.0}
    export_translators(run_dir, {"a2b": identity_model(), "b2a": identity_model()}, manifest)
    return str(run_dir)


@pytest.fixture(scope="module")
def ct_run(tmp_path_factory):
    """Identity between two CT domains with the same window: translation must give back the input."""
    return export_identity(tmp_path_factory.mktemp("ct_run"), "CT_lowdose", "CT", (-1000, 2000), (-1000, 2000))


@pytest.fixture(scope="module")
def pet_run(tmp_path_factory):
    """Identity in model range between PET [0, 10] and CT [-1000, 2000]: HU = 300 * PET - 1000."""
    return export_identity(tmp_path_factory.mktemp("pet_run"), "PET", "CT", (0, 10), (-1000, 2000))


def affine(flip_x=False, rotate_deg=0.0):
    """1.5 x 1.5 x 2 mm voxels centred on the world origin, optionally x-flipped or rotated about z."""
    angle = np.deg2rad(rotate_deg)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    linear = rotation @ np.diag([-1.5 if flip_x else 1.5, 1.5, 2.0])
    result = np.eye(4)
    result[:3, :3] = linear
    result[:3, 3] = -linear @ ((np.array(SHAPE) - 1) / 2)
    return result


def smooth_ct(grid_affine, shape=SHAPE):
    """A smooth head-like blob in HU (air -1000, peak +100) centred near the world origin."""
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    world = idx @ grid_affine[:3, :3].T + grid_affine[:3, 3]
    r2 = np.sum(((world - [3.0, -2.0, 1.0]) / np.array([11.0, 13.0, 10.0])) ** 2, axis=-1)
    return (-1000 + 1100 * np.exp(-r2)).astype(np.float32)


def run_cli(*flags):
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "cycle_medgan_tf.translate", *flags], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def assert_one_line_error(result, message):
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr and message in lines[0], result.stderr


def test_nifti_round_trip_with_identity_model(ct_run, tmp_path):
    grid = affine(flip_x=True)
    source = volumes.write_nifti(Volume(smooth_ct(grid), grid, "CT"), tmp_path / "in.nii.gz")
    out = tmp_path / "out.nii.gz"
    result = run_cli(f"--model_dir={ct_run}", f"--input={source}", f"--output={out}", "--batch_size=8")
    assert result.returncode == 0, result.stderr
    assert "translating a2b: 20/20 slices" in result.stderr
    img = nib.load(out)
    assert img.shape == SHAPE and img.get_data_dtype() == np.float32
    np.testing.assert_allclose(img.affine, grid, atol=1e-5)
    description = img.header["descrip"].item().decode()
    assert "cyclegan" in description and "CT_lowdose->CT" in description
    difference = np.abs(img.get_fdata() - smooth_ct(grid))
    assert difference.max() < 15.0 and difference.mean() < 1.0  # HU, after two linear interpolations in-plane


def test_dicom_series_round_trip_to_nifti(ct_run, tmp_path):
    grid = affine(rotate_deg=25.0)  # oblique acquisition
    series = volumes.write_dicom_series(Volume(np.round(smooth_ct(grid)), grid, "CT"), tmp_path / "ct_series")
    out = tmp_path / "out.nii"
    result = run_cli(f"--model_dir={ct_run}", f"--input={series}", f"--output={out}")
    assert result.returncode == 0, result.stderr
    read = volumes.read_volume(series)
    img = nib.load(out)
    assert img.shape == read.shape
    np.testing.assert_allclose(img.affine, read.affine, atol=1e-4)
    assert np.abs(img.get_fdata() - read.data).max() < 20.0


def test_translate_volume_applies_windows_crop_and_background(pet_run):
    translator = load_translator(pet_run, "a2b")
    shape = (100, 48, 6)  # 100 mm wide: wider than the 64 mm the model sees
    grid = np.diag([1.0, 1.0, 2.0, 1.0])
    grid[:3, 3] = [-49.5, -23.5, -5.0]
    pet = np.tile(np.linspace(0, 12, shape[1], dtype=np.float32)[None, :, None], (shape[0], 1, shape[2]))
    with pytest.raises(IntensityError, match=r"33.3% of head voxels lie outside the training window \[0, 10\]"):
        translate.translate_volume(translator, Volume(pet, grid, "PT", "pet"), "a2b")
    result = translate.translate_volume(translator, Volume(pet, grid, "PT", "pet"), "a2b", batch_size=4, force=True)
    assert result.shape == shape and result.data.dtype == np.float32 and result.modality == "CT"
    np.testing.assert_allclose(result.affine, grid)
    x = np.arange(shape[0]) - 49.5
    seen = np.abs(x) < 31  # well inside the central 64 mm
    expected = np.clip(300 * pet - 1000, -1000, 2000)  # PET above the window's 10 clips to the CT window's top
    np.testing.assert_allclose(result.data[seen], expected[seen], atol=0.05)
    assert np.all(result.data[np.abs(x) > 33] == -1000.0)  # outside the model's field: CT background


def make_store(path, domain_a="PET", domain_b="CT", spacing=1.0):
    rng = np.random.default_rng(0)
    pet = lambda n: rng.uniform(0, 9, (n, SIZE, SIZE)).astype(np.float32)  # noqa: E731
    ct = lambda n: rng.uniform(-1000, 1500, (n, SIZE, SIZE)).astype(np.float32)  # noqa: E731
    return write_store(path, task="pet_ct", domain_a=domain_a, domain_b=domain_b, pixel_spacing_mm=spacing,
                       train_a=pet(5), train_a_subjects=["a1"] * 3 + ["a2"] * 2, train_b=ct(4),
                       train_b_subjects=["b1"] * 4, val_a=pet(3), val_b=ct(3), val_subjects=["v1"] * 3,
                       window_a=(0, 10), window_b=(-1000, 2000))


def test_store_val_split_translation(pet_run, tmp_path):
    source = make_store(tmp_path / "in.h5")
    out = tmp_path / "out.h5"
    result = run_cli(f"--model_dir={pet_run}", f"--input={source}", f"--output={out}", "--split=val")
    assert result.returncode == 0, result.stderr
    with open_store(source) as before, open_store(out) as after:
        np.testing.assert_array_equal(after.val_images("A")[()], before.val_images("A")[()])
        np.testing.assert_allclose(after.val_images("B")[()], 300 * before.val_images("A")[()] - 1000, atol=0.05)
        for domain in "AB":  # the other split is copied unchanged
            np.testing.assert_array_equal(after.train_images(domain)[()], before.train_images(domain)[()])
            assert list(after.train_subjects(domain)) == list(before.train_subjects(domain))
        assert list(after.val_subjects()) == ["v1"] * 3
        assert (after.window_a, after.window_b) == (before.window_a, before.window_b)
    with h5py.File(out) as f:
        assert f.attrs["translated_split"] == "val" and f.attrs["translated_direction"] == "a2b"


def test_store_train_split_translation_b2a(pet_run, tmp_path):
    source = make_store(tmp_path / "in.h5")
    translator = load_translator(pet_run, "b2a")
    out = translate.translate_store(translator, source, tmp_path / "out.h5", "b2a", split="train")
    with open_store(source) as before, open_store(out) as after:
        ct = before.train_images("B")[()]
        np.testing.assert_allclose(after.train_images("A")[()], np.clip((ct + 1000) / 300, 0, 10), atol=1e-4)
        assert list(after.train_subjects("A")) == ["b1"] * 4
        np.testing.assert_array_equal(after.val_images("A")[()], before.val_images("A")[()])


def test_existing_output_is_refused(ct_run, tmp_path):
    grid = affine()
    source = volumes.write_nifti(Volume(smooth_ct(grid), grid), tmp_path / "in.nii.gz")
    out = tmp_path / "out.nii.gz"
    out.write_bytes(b"precious")
    assert_one_line_error(run_cli(f"--model_dir={ct_run}", f"--input={source}", f"--output={out}"),
                          "already exists (use --overwrite")
    assert out.read_bytes() == b"precious"


def test_bad_inputs_exit_2_with_one_line(ct_run, pet_run, tmp_path):
    corrupt = tmp_path / "corrupt.nii.gz"
    corrupt.write_bytes(b"\x1f\x8b" + os.urandom(500))
    header = nib.Nifti1Header()
    header.set_sform(np.eye(4), code=0)
    no_geometry = tmp_path / "nogeom.nii"
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 4), np.float32), None, header), no_geometry)
    grid = affine()
    good = volumes.write_nifti(Volume(smooth_ct(grid), grid), tmp_path / "good.nii.gz")
    pet_series = volumes.write_dicom_series(Volume(np.ones((4, 4, 3)), grid, "PET"), tmp_path / "pet_series")
    ct_store = make_store(tmp_path / "ct_first.h5", domain_a="CT", domain_b="PET")
    out = tmp_path / "out.nii.gz"
    cases = [
        ((f"--model_dir={ct_run}", f"--input={corrupt}", f"--output={out}"), "cannot read NIfTI"),
        ((f"--model_dir={ct_run}", f"--input={no_geometry}", f"--output={out}"), "no usable geometry"),
        ((f"--model_dir={tmp_path}", f"--input={good}", f"--output={out}"), "has no exported model"),
        ((f"--model_dir={ct_run}", f"--input={good}", f"--output={tmp_path / 'out.h5'}"), "must end in .nii"),
        ((f"--model_dir={ct_run}", f"--input={pet_series}", f"--output={out}"), "wrong --direction?"),
        ((f"--model_dir={pet_run}", f"--input={ct_store}", f"--output={tmp_path / 'o.h5'}"),
         "domain A is 'CT' but the model's a2b source domain is 'PET'"),
        ((f"--model_dir={ct_run}", f"--input={good}", f"--output={out}", "--direction=c2d"), "--direction"),
    ]
    for flags, message in cases:
        assert_one_line_error(run_cli(*flags), message)
    assert not out.exists() and not (tmp_path / "o.h5").exists()
