"""Volume I/O: NIfTI and DICOM reading/writing, geometry, reorientation, resampling, crops and error messages."""

import gzip
import os

import nibabel as nib
import numpy as np
import pydicom
import pytest

from cycle_medgan_tf.data import volumes as V
from cycle_medgan_tf.data.volumes import Volume, VolumeError

SHAPE = (40, 48, 20)
SPACING = (1.5, 1.5, 2.0)


def make_affine(flip_x=False, rotate_deg=0.0):
    """1.5 x 1.5 x 2 mm voxels, optionally with x flipped and rotated about z (an oblique acquisition)."""
    angle = np.deg2rad(rotate_deg)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([-SPACING[0] if flip_x else SPACING[0], SPACING[1], SPACING[2]])
    affine[:3, 3] = [-29.0, -35.5, -19.0]
    return affine


def integer_ct(seed=0):
    """Integer HU values, exactly representable in DICOM int16 with slope 1."""
    return np.random.default_rng(seed).integers(-1000, 1800, size=SHAPE).astype(np.float32)


@pytest.mark.parametrize("flip_x,rotate_deg", [(False, 0.0), (True, 0.0), (False, 20.0)])
def test_nifti_round_trip_keeps_data_affine_and_description(tmp_path, flip_x, rotate_deg):
    volume = Volume(integer_ct(), make_affine(flip_x, rotate_deg), "CT")
    path = V.write_nifti(volume, tmp_path / "ct.nii.gz", description="made by test")
    back = V.read_volume(path)
    assert back.data.dtype == np.float32 and back.shape == SHAPE
    np.testing.assert_array_equal(back.data, volume.data)
    np.testing.assert_allclose(back.affine, volume.affine, atol=1e-5)
    assert nib.load(path).header["descrip"].item().decode() == "made by test"
    assert [p.name for p in tmp_path.iterdir()] == ["ct.nii.gz"]  # no temporary file left behind


def test_write_nifti_refuses_to_overwrite(tmp_path):
    path = tmp_path / "v.nii"
    V.write_nifti(Volume(integer_ct(), make_affine()), path)
    before = path.read_bytes()
    with pytest.raises(VolumeError, match="already exists"):
        V.write_nifti(Volume(integer_ct(1), make_affine()), path)
    assert path.read_bytes() == before
    V.write_nifti(Volume(integer_ct(1), make_affine()), path, overwrite=True)
    np.testing.assert_array_equal(V.read_volume(path).data, integer_ct(1))


@pytest.mark.parametrize("rotate_deg", [0.0, 20.0])
def test_dicom_series_reads_back_like_the_nifti_it_was_built_from(tmp_path, rotate_deg):
    volume = Volume(integer_ct(), make_affine(rotate_deg=rotate_deg), "CT")
    V.write_nifti(volume, tmp_path / "ct.nii.gz")
    series = V.write_dicom_series(volume, tmp_path / "ct_dicom")
    # file names must not matter: reverse their order
    names = sorted(os.listdir(series))
    for i, name in enumerate(names):
        os.rename(os.path.join(series, name), os.path.join(series, f"tmp{i}"))
    for i in range(len(names)):
        os.rename(os.path.join(series, f"tmp{i}"), os.path.join(series, f"z{len(names) - i:03d}.dcm"))
    dicom = V.read_volume(series)
    nifti = V.read_volume(tmp_path / "ct.nii.gz")
    assert dicom.modality == "CT" and dicom.shape == nifti.shape
    np.testing.assert_array_equal(dicom.data, nifti.data)
    np.testing.assert_allclose(dicom.affine, nifti.affine, atol=1e-4)
    geometry = V.read_geometry(series)
    assert geometry.shape == SHAPE and geometry.modality == "CT"
    np.testing.assert_allclose(geometry.affine, nifti.affine, atol=1e-4)


def test_flipped_pet_series_matches_nifti_in_world_space(tmp_path):
    """With x flipped the slices run against the DICOM slice normal; they come back sorted along it."""
    rng = np.random.default_rng(3)
    data = rng.uniform(0, 12, size=SHAPE).astype(np.float32)
    affine = make_affine(flip_x=True)
    volume = Volume(data, affine, "PET")
    series = V.write_dicom_series(volume, tmp_path / "pet")
    first = pydicom.dcmread(os.path.join(series, sorted(os.listdir(series))[0]))
    assert first.Modality == "PT" and first.SOPClassUID == V.DICOM_SOP_CLASSES["PET"]
    dicom = V.read_volume(series)
    assert dicom.modality == "PT"
    assert not np.allclose(dicom.affine, affine)  # a different but equivalent voxel order...
    mine, theirs = V.reorient_canonical(dicom), nib.as_closest_canonical(nib.Nifti1Image(data, affine))
    np.testing.assert_allclose(mine.affine, theirs.affine, atol=1e-4)  # ...of the same world grid
    slope = (data.max() - data.min()) / 65535  # per-slice int16 quantisation
    np.testing.assert_allclose(mine.data, theirs.get_fdata(), atol=slope)


@pytest.mark.parametrize("seed", range(8))
def test_reorient_canonical_matches_nibabel(seed):
    rng = np.random.default_rng(seed)
    rotation = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    affine = np.eye(4)
    affine[:3, :3] = rotation * rng.uniform(0.5, 3.0, 3)
    affine[:3, 3] = rng.normal(size=3) * 30
    data = rng.normal(size=(5, 6, 7)).astype(np.float32)
    ours = V.reorient_canonical(Volume(data, affine))
    theirs = nib.as_closest_canonical(nib.Nifti1Image(data, affine))
    np.testing.assert_array_equal(ours.data, theirs.get_fdata(dtype=np.float32))
    np.testing.assert_allclose(ours.affine, theirs.affine, atol=1e-9)
    shape, canonical_affine = V.canonical_geometry(data.shape, affine)
    assert shape == ours.shape and np.allclose(canonical_affine, ours.affine)


def world_coordinates(shape, affine):
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    return idx @ affine[:3, :3].T + affine[:3, 3]


@pytest.mark.parametrize("flip_x,rotate_deg", [(False, 0.0), (True, 0.0), (False, 20.0)])
def test_resampling_follows_the_affine(flip_x, rotate_deg):
    """A linear function of world position is reproduced exactly by linear interpolation onto the new grid."""
    affine = make_affine(flip_x, rotate_deg)
    gradient, offset = np.array([3.0, -2.0, 5.0]), 100.0
    volume = Volume(world_coordinates(SHAPE, affine) @ gradient + offset, affine, "MR")
    iso = V.resample_to_spacing(volume, 1.0, antialias=False)
    assert iso.shape == (60, 72, 40)
    np.testing.assert_allclose(iso.spacing, 1.0)
    centre = lambda shape, aff: aff[:3, :3] @ ((np.array(shape) - 1) / 2) + aff[:3, 3]  # noqa: E731
    np.testing.assert_allclose(centre(iso.shape, iso.affine), centre(SHAPE, affine), atol=1e-9)
    expected = world_coordinates(iso.shape, iso.affine) @ gradient + offset
    interior = (slice(2, -2),) * 3
    np.testing.assert_allclose(iso.data[interior], expected[interior], atol=1e-3)


def test_resampling_back_to_the_original_grid_is_close_for_smooth_data():
    affine = make_affine(flip_x=True)
    world = world_coordinates(SHAPE, affine)
    smooth = 100 * np.exp(-np.sum((world / np.array([18.0, 22.0, 16.0])) ** 2, axis=-1))
    volume = Volume(smooth, affine, "PET")
    canonical = V.reorient_canonical(volume)
    iso = V.resample_to_spacing(canonical, 1.0)
    back = V.resample_to_grid(iso, volume.shape, volume.affine)
    assert back.shape == SHAPE and np.allclose(back.affine, affine)
    assert np.abs(back.data - volume.data).max() < 3.0  # 3 % of the peak, from two linear interpolations


def test_points_outside_the_field_of_view_get_the_background():
    volume = Volume(np.full(SHAPE, 50.0), make_affine(), "CT")
    shifted = volume.affine.copy()
    shifted[0, 3] += 30.0  # half of the new grid lies right of the input
    moved = V.resample_to_grid(volume, SHAPE, shifted)
    inside = moved.data[:19]
    outside = moved.data[21:]
    assert np.all(inside == 50.0) and np.all(outside == -1000.0)
    assert np.all(V.resample_to_grid(volume, SHAPE, shifted, cval=7.0).data[21:] == 7.0)


def test_antialiasing_smooths_only_when_downsampling():
    rng = np.random.default_rng(0)
    noise = Volume(rng.normal(size=(40, 40, 40)), np.eye(4), "MR")
    coarse = V.resample_to_spacing(noise, 2.0)
    plain = V.resample_to_spacing(noise, 2.0, antialias=False)
    assert coarse.data[4:-4, 4:-4, 4:-4].std() < 0.8 * plain.data[4:-4, 4:-4, 4:-4].std()
    np.testing.assert_array_equal(V.resample_to_spacing(noise, 0.5).data,
                                  V.resample_to_spacing(noise, 0.5, antialias=False).data)


def test_axial_slices_are_in_radiological_orientation_and_invertible():
    affine = np.eye(4)  # canonical RAS+: axis 0 toward the patient's right, 1 anterior, 2 superior
    data = np.zeros((10, 12, 3), dtype=np.float32)
    data[9, 11, 1] = 1.0  # the most rightward and most anterior voxel of slice 1
    volume = Volume(data, affine)
    slices = V.axial_slices(volume)
    assert slices.shape == (3, 12, 10)
    rows, cols = np.nonzero(slices[1])
    assert (rows[0], cols[0]) == (0, 0)  # radiological display: anterior at the top, patient's right on the left
    back = V.volume_from_axial_slices(slices, volume)
    np.testing.assert_array_equal(back.data, data)
    with pytest.raises(ValueError, match="canonical"):
        V.axial_slices(Volume(data, make_affine(flip_x=True)))


@pytest.mark.parametrize("size", [8, 11, 16, 31])
def test_center_crop_pad_and_uncrop_are_inverse(size):
    images = np.arange(2 * 12 * 15, dtype=np.float32).reshape(2, 12, 15) + 1
    cropped = V.center_crop_pad(images, size, fill=-5.0)
    assert cropped.shape == (2, size, size)
    restored = V.center_uncrop(cropped, (12, 15), fill=-5.0)
    kept = restored != -5.0
    np.testing.assert_array_equal(restored[kept], images[kept])
    assert kept.sum() == 2 * min(12, size) * min(15, size)
    assert (cropped == -5.0).sum() == 2 * (size * size - min(12, size) * min(15, size))


def test_background_by_modality():
    assert V.background_value("CT") == -1000.0
    assert V.background_value("PT") == V.background_value("PET") == V.background_value("MR_motion") == 0.0
    assert V.modality_kind("pet") == "PET" and V.modality_kind("T1w") == "MR" and V.modality_kind("xray") is None


# ------------------------------------------------------------------------------------------ error messages

def write_nifti_image(path, data, affine=None, codes=1):
    """A NIfTI file written with nibabel directly (so it can hold what write_nifti would refuse)."""
    header = nib.Nifti1Header()
    header.set_sform(make_affine() if affine is None else affine, code=codes)
    nib.save(nib.Nifti1Image(np.asarray(data, dtype=np.float32), None, header), path)
    return path


def corrupt_gzip(tmp_path):
    good = write_nifti_image(tmp_path / "good.nii.gz", integer_ct())
    raw = gzip.decompress(good.read_bytes())
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(gzip.compress(raw)[: len(raw) // 50])  # truncated
    return bad


NIFTI_ERRORS = {
    "random bytes": (lambda p: (p / "x.nii").write_bytes(os.urandom(400)) and p / "x.nii", "cannot read"),
    "truncated gzip": (corrupt_gzip, "cannot read"),
    "no qform/sform": (lambda p: write_nifti_image(p / "x.nii", integer_ct(), codes=0), "sform_code are both 0"),
    "singular affine": (lambda p: write_nifti_image(p / "x.nii", integer_ct(), affine=np.diag([1, 0, 1, 1.0])),
                        "no usable geometry \\(singular"),
    "2-D": (lambda p: write_nifti_image(p / "x.nii", np.zeros((5, 6))), "expected a single 3-D volume"),
    "4-D": (lambda p: write_nifti_image(p / "x.nii", np.zeros((5, 6, 7, 2))), "expected a single 3-D volume"),
    "all NaN": (lambda p: write_nifti_image(p / "x.nii", np.full((5, 6, 7), np.nan)), "no finite values"),
    "missing": (lambda p: p / "absent.nii.gz", "no such file"),
    "wrong type": (lambda p: (p / "x.txt").write_text("hello") and p / "x.txt", "unsupported input"),
}


@pytest.mark.parametrize("case", sorted(NIFTI_ERRORS))
def test_bad_nifti_inputs_give_clear_errors(tmp_path, case):
    make, message = NIFTI_ERRORS[case]
    path = make(tmp_path)
    with pytest.raises(VolumeError, match=message) as info:
        V.read_volume(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_trailing_singleton_dimension_is_accepted(tmp_path):
    path = write_nifti_image(tmp_path / "x.nii", np.ones((5, 6, 7, 1)))
    assert V.read_volume(path).shape == (5, 6, 7)


def small_series(tmp_path, name="s", modality="CT"):
    data = np.random.default_rng(1).integers(-100, 100, size=(6, 5, 4)).astype(np.float32)
    return V.write_dicom_series(Volume(data, make_affine(), modality), tmp_path / name)


def edit_slice(series, index, **changes):
    path = os.path.join(series, sorted(os.listdir(series))[index])
    ds = pydicom.dcmread(path)
    for keyword, value in changes.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    ds.save_as(path)


def dicom_case_missing_position(tmp_path):
    series = small_series(tmp_path)
    edit_slice(series, 2, ImagePositionPatient=None)
    return series


def dicom_case_mixed_sizes(tmp_path):
    series = small_series(tmp_path)
    other = small_series(tmp_path, "other")
    path = os.path.join(other, sorted(os.listdir(other))[0])
    ds = pydicom.dcmread(path)
    ds.Rows, ds.Columns = 2, 3
    ds.PixelData = np.zeros((2, 3), np.int16).tobytes()
    ds.SeriesInstanceUID = pydicom.dcmread(os.path.join(series, sorted(os.listdir(series))[0])).SeriesInstanceUID
    ds.ImagePositionPatient = [0, 0, 500]
    ds.save_as(os.path.join(series, "extra.dcm"))
    return series


def dicom_case_mixed_orientation(tmp_path):
    series = small_series(tmp_path)
    edit_slice(series, 1, ImageOrientationPatient=[0, 1, 0, 1, 0, 0])
    return series


def dicom_case_duplicate_position(tmp_path):
    series = small_series(tmp_path)
    position = pydicom.dcmread(os.path.join(series, sorted(os.listdir(series))[0])).ImagePositionPatient
    edit_slice(series, 1, ImagePositionPatient=list(position))
    return series


def dicom_case_gap(tmp_path):
    series = small_series(tmp_path)
    os.remove(os.path.join(series, sorted(os.listdir(series))[1]))
    return series


def dicom_case_two_series(tmp_path):
    series = small_series(tmp_path)
    edit_slice(series, 0, SeriesInstanceUID=pydicom.uid.generate_uid())
    return series


def dicom_case_stray_file(tmp_path):
    series = small_series(tmp_path)
    with open(os.path.join(series, "notes.txt"), "w") as f:
        f.write("not an image")
    return series


def dicom_case_single_file(tmp_path):
    series = small_series(tmp_path)
    return os.path.join(series, sorted(os.listdir(series))[0])


def dicom_case_empty_dir(tmp_path):
    os.makedirs(tmp_path / "empty")
    return tmp_path / "empty"


DICOM_ERRORS = {
    "missing position": (dicom_case_missing_position, "missing ImagePositionPatient"),
    "mixed sizes": (dicom_case_mixed_sizes, "mixed slice sizes"),
    "mixed orientation": (dicom_case_mixed_orientation, "different orientations"),
    "duplicate position": (dicom_case_duplicate_position, "duplicate slice position"),
    "gap": (dicom_case_gap, "not uniform"),
    "two series": (dicom_case_two_series, "holds 2 DICOM series"),
    "stray file": (dicom_case_stray_file, "not a readable DICOM file"),
    "single file": (dicom_case_single_file, "single DICOM file"),
    "empty directory": (dicom_case_empty_dir, "no files found"),
}


@pytest.mark.parametrize("case", sorted(DICOM_ERRORS))
def test_bad_dicom_series_give_clear_errors(tmp_path, case):
    make, message = DICOM_ERRORS[case]
    path = make(tmp_path)
    with pytest.raises(VolumeError, match=message) as info:
        V.read_volume(path)
    assert "\n" not in str(info.value)
    with pytest.raises(VolumeError, match=message):
        V.read_geometry(path)


def test_write_dicom_needs_a_known_modality_and_finite_data(tmp_path):
    with pytest.raises(VolumeError, match="modality"):
        V.write_dicom_series(Volume(np.zeros((2, 2, 2)), np.eye(4), "US"), tmp_path / "a")
    with pytest.raises(VolumeError, match="non-finite"):
        V.write_dicom_series(Volume(np.full((2, 2, 2), np.nan), np.eye(4), "CT"), tmp_path / "b")
    assert not os.listdir(tmp_path)
