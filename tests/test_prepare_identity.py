"""prepare: folder and glob inputs, and subject leaks found by name key, DICOM ids and content."""

import shutil

import pytest

from cycle_medgan_tf.data import identity, volumes
from cycle_medgan_tf.data import inputs as input_lists
from cycle_medgan_tf.data.prepare import PrepareError, prepare_store
from cycle_medgan_tf.data.store import open_store
from cycle_medgan_tf.data.volumes import Volume
from tests.test_prepare import inputs  # noqa: F401  (fixture: the volumes s1..s7 of test_prepare)
from tests.test_prepare import base_args, ct_from_pet, grid_affine, pet_head, run_cli


def test_subject_keys():
    assert identity.subject_key("sub01_pet") == identity.subject_key("sub01_ct") == "sub01"
    assert identity.subject_key("sub-07_ses-2_T1w") == "sub-07"
    assert identity.subject_key("s3") == "s3" and identity.subject_key("ct") == "ct"
    assert identity.subject_key("P12-FDG-PET") == "p12"


def test_name_key_leak_is_refused(inputs, tmp_path):
    _, paths = inputs
    renamed = shutil.copy(paths["ct4"], tmp_path / "s1_ct.nii")
    with pytest.raises(PrepareError, match=r"train A and train B share subject ids \['s1'\] \(names without "
                                           r"modality words\)"):
        prepare_store(**base_args(paths, tmp_path / "x.h5", train_b=[str(renamed), paths["ct5"]]))


def test_dicom_patient_and_study_overlaps_are_refused(inputs, tmp_path):
    _, paths = inputs
    affine = grid_affine()
    pet = volumes.write_dicom_series(Volume(pet_head(11, affine), affine, "PET"), tmp_path / "p11",
                                     patient_id="P-0042")
    ct = volumes.write_dicom_series(Volume(ct_from_pet(pet_head(12, affine)), affine, "CT"), tmp_path / "c12",
                                    patient_id="P-0042")
    with pytest.raises(PrepareError, match=r"train A and train B share PatientID 'P-0042' \(.*p11, .*c12\)"):
        prepare_store(**base_args(paths, tmp_path / "x.h5", train_a=[paths["pet1"], pet],
                                  train_b=[paths["ct4"], ct]))
    anonymous = volumes.write_dicom_series(Volume(ct_from_pet(pet_head(13, affine)), affine, "CT"),
                                           tmp_path / "c13", patient_id="ANON")
    assert identity.dicom_ids(volumes.read_geometry(anonymous)).keys() == {"StudyInstanceUID"}


def test_content_leaks_are_refused(inputs, tmp_path):
    _, paths = inputs
    copy = shutil.copy(paths["pet1"], tmp_path / "s9.nii.gz")          # the same scan under another name
    with pytest.raises(PrepareError, match=r"train A hold identical volumes \(.*s1.nii.gz, .*s9.nii.gz; "
                                           r"content correlation 1.0000\): the same scan must not be used twice"):
        prepare_store(**base_args(paths, tmp_path / "x.h5", train_a=[paths["pet1"], paths["pet2"], str(copy)]))
    source = volumes.read_volume(paths["pet2"])                           # converted to DICOM and rescaled
    converted = volumes.write_dicom_series(Volume(source.data * 1.7, source.affine, "PET"), tmp_path / "s8")
    with pytest.raises(PrepareError, match=r"train A and validation hold near-identical volumes \(.*s2.nii.gz, "
                                           r".*s8; content correlation 1.0000\)"):
        prepare_store(**base_args(paths, tmp_path / "x.h5",
                                  val_pairs=[(converted, paths["ct6"]), (paths["pet7"], paths["ct7"])]))
    assert not (tmp_path / "x.h5").exists()


def test_folder_and_glob_inputs(inputs, tmp_path):
    root, paths = inputs
    folder = tmp_path / "train_a"
    folder.mkdir()
    for s in ("s2", "s1"):
        shutil.copy(paths[f"pet{s[1]}"], folder / f"{s}.nii.gz")
    shutil.copytree(paths["pet3"], folder / "s3")
    (folder / "s1.json").write_text("{}")                                  # sidecars and hidden files are skipped
    (folder / ".hidden.nii").write_text("")
    lines = []
    assert input_lists.read_path_list(str(folder), "train_a", lines.append) == \
        [str(folder / "s1.nii.gz"), str(folder / "s2.nii.gz"), str(folder / "s3")]
    assert lines == [f"--train_a: 3 volumes from folder {folder} (sorted): s1, s2, s3"]
    assert input_lists.read_path_list(f"{root}/pet/s[12].nii.gz", "train_a") == [paths["pet1"], paths["pet2"]]
    assert input_lists.read_path_list(paths["pet3"], "train_a") == [paths["pet3"]]   # a DICOM series is one volume
    with pytest.raises(PrepareError, match="glob .* holds no NIfTI files"):
        input_lists.read_path_list(f"{root}/nothing/*.nii", "train_a")


def test_val_pairs_from_two_folders_are_paired_by_subject(tmp_path):
    affine = grid_affine()
    for s in (1, 2):
        (tmp_path / "pet").mkdir(exist_ok=True)
        volumes.write_nifti(Volume(pet_head(s, affine), affine), tmp_path / "pet" / f"sub0{s}_pet.nii.gz")
        volumes.write_dicom_series(Volume(ct_from_pet(pet_head(s, affine)), affine, "CT"),
                                   tmp_path / "ct" / f"sub0{s}_ct")
    pairs = input_lists.read_pair_list(f"{tmp_path / 'pet'},{tmp_path / 'ct'}", "val_pairs")
    assert [(identity.subject_id(a), identity.subject_id(b)) for a, b in pairs] == \
        [("sub01_pet", "sub01_ct"), ("sub02_pet", "sub02_ct")]
    (tmp_path / "pet" / "sub02_pet.nii.gz").rename(tmp_path / "pet" / "sub03_pet.nii.gz")
    with pytest.raises(PrepareError, match=r"subjects \['sub02', 'sub03'\] are on one side only"):
        input_lists.read_pair_list(f"{tmp_path / 'pet'},{tmp_path / 'ct'}", "val_pairs")


def test_cli_with_folders(inputs, tmp_path):
    _, paths = inputs
    train_a, train_b, val_a, val_b = (tmp_path / n for n in ("pa", "cb", "va", "vb"))
    for d in (train_a, train_b, val_a, val_b):
        d.mkdir()
    for s in (1, 2):
        shutil.copy(paths[f"pet{s}"], train_a)
    shutil.copy(paths["ct4"], train_b)
    shutil.copytree(paths["ct5"], train_b / "s5")
    shutil.copy(paths["pet6"], val_a)
    shutil.copytree(paths["ct6"], val_b / "s6")
    out = tmp_path / "store.h5"
    result = run_cli("--task=pet_ct", "--domain_a=PET", "--domain_b=CT", f"--train_a={train_a}",
                     f"--train_b={train_b}", f"--val_pairs={val_a},{val_b}", f"--out={out}", "--size=64")
    assert result.returncode == 0, result.stderr
    assert f"--train_b: 2 volumes from folder {train_b} (sorted): s4, s5" in result.stderr
    with open_store(out) as store:
        assert set(store.train_subjects("A")) == {"s1", "s2"} and set(store.train_subjects("B")) == {"s4", "s5"}
        assert set(store.val_subjects()) == {"s6"}
