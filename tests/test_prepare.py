"""Preparing a slice store from NIfTI / DICOM volumes (prepare_store and its command line)."""

import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
from scipy import ndimage

from cycle_medgan_tf.data import prepare, volumes
from cycle_medgan_tf.data.prepare import PrepareError, prepare_store
from cycle_medgan_tf.data.store import open_store
from cycle_medgan_tf.data.volumes import Volume

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHAPE = (40, 48, 20)
SIZE = 64


def grid_affine(spacing=(1.5, 1.5, 2.0), shape=SHAPE):
    """A grid centred on the world origin."""
    affine = np.diag(list(spacing) + [1.0])
    affine[:3, 3] = -(np.array(shape) - 1) / 2 * np.array(spacing)
    return affine


def pet_head(seed, affine, shape=SHAPE):
    """PET-like activity: 0 outside an ellipsoidal head (radii 22-25, 26-28, 14 mm; each seed its own shape and
    position), 2..6 inside, in 0.01 steps. The head is shorter than the 40 mm field of view, so the first and
    last slices are empty."""
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    world = idx @ affine[:3, :3].T + affine[:3, 3] - np.array([seed % 3, -(seed % 2), 0.0])
    radii = np.array([22.0 + seed % 4, 26.0 + (seed // 2) % 3, 14.0])
    inside = np.sum((world / radii) ** 2, axis=-1) <= 1
    activity = 2 + 4 * np.exp(-np.sum((world - [6, -4, 2]) ** 2, axis=-1) / (2 * 12.0 ** 2))
    return np.where(inside, np.round(activity, 2), 0.0).astype(np.float32)


def ct_from_pet(pet):
    """A CT whose every voxel (background too) is linked to the PET one: HU = 100 * PET - 1000 (integers)."""
    return np.round(100 * pet - 1000).astype(np.float32)


def flip_x(volume):
    """The same image in world space with array axis 0 reversed."""
    affine = volume.affine.copy()
    affine[:3, 3] += (volume.shape[0] - 1) * affine[:3, 0]
    affine[:3, 0] *= -1
    return Volume(volume.data[::-1].copy(), affine, volume.modality)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Train A: PET s1, s2 (NIfTI), s3 (DICOM). Train B: CT s4 (NIfTI), s5 (x-flipped DICOM).
    Val: s6 PET NIfTI with its CT as an x-flipped DICOM series; s7 PET with its CT on a finer grid."""
    root = tmp_path_factory.mktemp("volumes")
    affine = grid_affine()
    paths = {}
    (root / "pet").mkdir()
    for s in (1, 2, 6, 7):
        pet = Volume(pet_head(s, affine), affine, "PET")
        paths[f"pet{s}"] = volumes.write_nifti(pet, root / "pet" / f"s{s}.nii.gz")
    paths["pet3"] = volumes.write_dicom_series(Volume(pet_head(3, affine), affine, "PET"), root / "pet_dicom" / "s3")
    (root / "ct").mkdir()
    paths["ct4"] = volumes.write_nifti(Volume(ct_from_pet(pet_head(4, affine)), affine, "CT"), root / "ct" / "s4.nii")
    for s in (5, 6):
        ct = flip_x(Volume(ct_from_pet(pet_head(s, affine)), affine, "CT"))
        paths[f"ct{s}"] = volumes.write_dicom_series(ct, root / "ct_dicom" / f"s{s}")
    fine_shape = (60, 72, 27)
    fine = grid_affine((1.0, 1.0, 1.5), fine_shape)
    paths["ct7"] = volumes.write_nifti(Volume(ct_from_pet(pet_head(7, fine, fine_shape)), fine, "CT"),
                                       root / "ct" / "s7.nii.gz")
    shifted = affine.copy()
    shifted[0, 3] += 200.0
    paths["ct_far"] = volumes.write_nifti(Volume(ct_from_pet(pet_head(8, affine)), shifted, "CT"),
                                          root / "ct" / "s8.nii.gz")
    return root, {k: str(v) for k, v in paths.items()}


def base_args(paths, out, **overrides):
    args = dict(task="pet_ct", domain_a="PET", domain_b="CT", train_a=[paths["pet1"], paths["pet2"], paths["pet3"]],
                train_b=[paths["ct4"], paths["ct5"]], val_pairs=[(paths["pet6"], paths["ct6"]),
                                                                  (paths["pet7"], paths["ct7"])],
                size=SIZE, log=lambda message: None)
    args.update(overrides)
    return dict(out=out, **args)


def run_cli(*flags):
    env = dict(os.environ, PYTHONPATH=REPO)
    return subprocess.run([sys.executable, "-m", "cycle_medgan_tf.data.prepare", *flags], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def cli_store(inputs):
    """A store made by the command line from a list file (with a comment, relative paths) and inline lists."""
    root, paths = inputs
    (root / "train_a.txt").write_text("# PET training subjects\npet/s1.nii.gz\npet/s2.nii.gz\n\npet_dicom/s3\n")
    (root / "val.txt").write_text(f"{paths['pet6']},{paths['ct6']}\npet/s7.nii.gz, ct/s7.nii.gz\n")
    out = root / "store.h5"
    result = run_cli("--task=pet_ct", "--domain_a=PET", "--domain_b=CT", f"--train_a={root / 'train_a.txt'}",
                     f"--train_b={paths['ct4']},{paths['ct5']}", f"--val_pairs={root / 'val.txt'}",
                     f"--out={out}", f"--size={SIZE}")
    assert result.returncode == 0, result.stderr
    return out


def test_store_fields_subjects_and_disjointness(cli_store):
    with h5py.File(cli_store) as f:
        assert f.attrs["format"] == "cycle-medgan-slices" and int(f.attrs["version"]) == 1
    with open_store(cli_store) as store:
        assert (store.task, store.domain_a, store.domain_b) == ("pet_ct", "PET", "CT")
        assert store.pixel_spacing_mm == 1.0 and store.image_size == SIZE
        assert store.train_images("A").shape[1:] == (SIZE, SIZE) and store.val_images("B").dtype == np.float32
        train_a, train_b = set(store.train_subjects("A")), set(store.train_subjects("B"))
        val = set(store.val_subjects())
        assert train_a == {"s1", "s2", "s3"} and train_b == {"s4", "s5"} and val == {"s6", "s7"}
        per_subject = [np.sum(store.train_subjects("A") == s) for s in ("s1", "s2", "s3")]
        assert all(10 < n < 40 for n in per_subject)  # the 40 mm field of view is resampled to 40 slices


def test_windows_follow_modality_defaults(cli_store):
    with open_store(cli_store) as store:
        assert store.window_b == (-1000.0, 2000.0)
        lo, hi = store.window_a
        assert lo == 0.0 and 5.5 < hi <= 6.0  # robust 99.9th percentile of activity that peaks at 6


def test_nearly_empty_slices_are_dropped(cli_store):
    with open_store(cli_store) as store:
        for domain in "AB":
            images = store.train_images(domain)[()]
            fractions = prepare.foreground_fraction(images, store.window(domain))
            assert fractions.min() >= 0.05
        assert len(store.train_subjects("A")) < 3 * 40  # the empty slices above and below the head are gone


def test_val_rows_are_the_same_anatomy(cli_store):
    with open_store(cli_store) as store:
        subjects = store.val_subjects()
        val_a, val_b = store.val_images("A")[()], store.val_images("B")[()]
    exact = subjects == "s6"  # same voxels, CT stored x-flipped as DICOM: the voxel-wise link must survive
    np.testing.assert_allclose(val_b[exact], 100 * val_a[exact] - 1000, atol=0.02)
    fine = subjects == "s7"   # CT on another grid: resampled onto the PET grid through world coordinates
    core = ndimage.binary_erosion(val_a[fine] > 0, iterations=4)  # away from the head's edge (slices are contiguous)
    difference = np.abs(val_b[fine] - (100 * val_a[fine] - 1000))[core]
    assert core.sum() > 1000 and np.median(difference) < 2.0 and difference.max() < 5


def test_windows_can_be_overridden_and_shared_subjects_refused(inputs, tmp_path):
    _, paths = inputs
    out = tmp_path / "w.h5"
    prepare_store(**base_args(paths, out, window_a=(0.5, 7.0), window_b=(-1100.0, 500.0)))
    with open_store(out) as store:
        assert store.window_a == (0.5, 7.0) and store.window_b == (-1100.0, 500.0)
    shared = base_args(paths, tmp_path / "s.h5", train_b=[paths["ct4"], paths["ct5"], paths["pet1"]])
    with pytest.raises(PrepareError, match=r"train A and train B share subject ids \['s1'\]"):
        prepare_store(**shared)
    assert not (tmp_path / "s.h5").exists()
    prepare_store(**dict(shared, allow_shared_subjects=True))
    with open_store(tmp_path / "s.h5") as store:
        assert "s1" in set(store.train_subjects("A")) & set(store.train_subjects("B"))


def test_inputs_are_validated_before_any_pixel_is_read(inputs, tmp_path, monkeypatch):
    _, paths = inputs
    calls = []
    monkeypatch.setattr(volumes, "read_volume", lambda path: calls.append(path))
    cases = {
        "geometry does not match": dict(val_pairs=[(paths["pet6"], paths["ct6"]), (paths["pet7"], paths["ct_far"])]),
        "is a PT series but the domain is CT": dict(train_b=[paths["ct4"], paths["pet3"]]),
        "subject id 's6' occurs twice": dict(train_a=[paths["pet1"], paths["pet6"], paths["ct6"]],
                                             allow_shared_subjects=True),
        "validation and train A share": dict(train_a=[paths["pet1"], paths["pet6"]]),
        "no default intensity window": dict(domain_b="SPECT"),
        "multiple of 4": dict(size=30),
        "no such file": dict(train_a=[paths["pet1"], "/nonexistent/s9.nii.gz"]),
    }
    for message, change in cases.items():
        with pytest.raises((PrepareError, volumes.VolumeError), match=message):
            prepare_store(**base_args(paths, tmp_path / "x.h5", **change))
    assert calls == [] and not os.listdir(tmp_path)


def test_too_strict_foreground_threshold_is_refused(inputs, tmp_path):
    _, paths = inputs
    with pytest.raises(PrepareError, match="no slice has foreground >= 0.9"):
        prepare_store(**base_args(paths, tmp_path / "x.h5", min_foreground=0.9))


def test_list_parsing(tmp_path):
    (tmp_path / "a.nii").write_bytes(b"")
    (tmp_path / "list.txt").write_text("a.nii  # comment\n\n/abs/b.nii\n")
    assert prepare.read_path_list(str(tmp_path / "list.txt"), "train_a") == [str(tmp_path / "a.nii"), "/abs/b.nii"]
    assert prepare.read_path_list("x.nii, y", "train_a") == ["x.nii", "y"]
    assert prepare.read_pair_list("a1,b1,a2,b2", "val_pairs") == [("a1", "b1"), ("a2", "b2")]
    with pytest.raises(PrepareError, match="odd number"):
        prepare.read_pair_list("a1,b1,a2", "val_pairs")
    (tmp_path / "pairs.txt").write_text("a.nii\n")
    with pytest.raises(PrepareError, match="pathA,pathB"):
        prepare.read_pair_list(str(tmp_path / "pairs.txt"), "val_pairs")
    assert prepare.parse_window("-1000,2000", "window_a") == (-1000.0, 2000.0)
    with pytest.raises(PrepareError, match="lo < hi"):
        prepare.parse_window("5,1", "window_a")
    assert prepare.subject_id("/d/sub-01_pet.nii.gz") == "sub-01_pet" and prepare.subject_id("/d/sub02/") == "sub02"


def assert_one_line_error(result, message):
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr and message in lines[0], result.stderr


def test_cli_refuses_an_existing_output(inputs, cli_store):
    _, paths = inputs
    before = os.path.getmtime(cli_store), os.path.getsize(cli_store)
    result = run_cli("--task=t", "--domain_a=PET", "--domain_b=CT", f"--train_a={paths['pet1']}",
                     f"--train_b={paths['ct4']}", f"--val_pairs={paths['pet6']},{paths['ct6']}", f"--out={cli_store}")
    assert_one_line_error(result, "already exists (use --overwrite")
    assert (os.path.getmtime(cli_store), os.path.getsize(cli_store)) == before


def test_cli_bad_inputs_exit_2_with_one_line(inputs, tmp_path):
    _, paths = inputs
    corrupt = tmp_path / "bad.nii.gz"
    corrupt.write_bytes(b"\x1f\x8b" + os.urandom(300))
    common = ["--task=t", "--domain_a=PET", "--domain_b=CT", f"--val_pairs={paths['pet6']},{paths['ct6']}",
              f"--out={tmp_path / 'o.h5'}"]
    assert_one_line_error(run_cli(*common, f"--train_a={corrupt}", f"--train_b={paths['ct4']}"), "cannot read NIfTI")
    assert_one_line_error(run_cli(*common, f"--train_a={paths['pet1']}", f"--train_b={paths['ct4']}",
                                  "--window_a=3"), "--window_a: expected lo,hi")
    assert_one_line_error(run_cli("--task=t"), "--domain_a")
    assert not (tmp_path / "o.h5").exists()
