"""HDF5 slice store format v1: writer, reader, windows and the validator (API and CLI)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from cycle_medgan_tf.data.store import (FORMAT_NAME, StoreError, from_model_range, open_store, to_model_range,
                                        write_store)
from cycle_medgan_tf.data.validate import main as validate_main
from cycle_medgan_tf.data.validate import validate_store
from tests.conftest import run_module, write_phantom_store


def test_round_trip_keeps_physical_units_and_layout(tmp_path):
    path = write_phantom_store(tmp_path / "s.h5")
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == FORMAT_NAME and int(f.attrs["version"]) == 1
        assert f["train/A/images"].dtype == np.float32 and f["train/A/images"].shape == (8, 64, 64)
        assert list(f["train/B"].attrs["window"]) == [-1000.0, 2000.0]
    with open_store(path) as store:
        assert (store.task, store.domain_a, store.domain_b) == ("pet_ct", "PET", "CT")
        assert store.image_size == 64 and store.pixel_spacing_mm == 4.0
        ct = store.train_images("B")[()]
        assert ct.min() < -900 and ct.max() > 1000          # HU kept, not normalised
        assert set(store.train_subjects("A")) == {"a0", "a1"}
        assert list(store.val_subjects()) == ["v0", "v0", "v1", "v1"]


def test_same_inputs_give_identical_bytes(tmp_path):
    a = write_phantom_store(tmp_path / "a.h5")
    b = write_phantom_store(tmp_path / "b.h5")
    assert open(a, "rb").read() == open(b, "rb").read()


def test_window_maps_linearly_and_round_trips():
    window = (-1000.0, 2000.0)
    hu = np.array([-1000.0, 500.0, 2000.0, -3000.0, 5000.0], np.float32)
    x = to_model_range(hu, window)
    np.testing.assert_allclose(x, [-1.0, 0.0, 1.0, -1.0, 1.0], atol=1e-6)
    inside = np.linspace(-1000, 2000, 101, dtype=np.float32)
    np.testing.assert_allclose(from_model_range(to_model_range(inside, window), window), inside, atol=1e-3)


def test_writer_refuses_overwrite_and_bad_arrays(tmp_path):
    path = write_phantom_store(tmp_path / "s.h5")
    with pytest.raises(StoreError, match="already exists"):
        write_store(
            path, task="t", domain_a="A", domain_b="B", pixel_spacing_mm=1, train_a=np.zeros((1, 4, 4), np.float32),
            train_a_subjects=["x"], train_b=np.zeros((1, 4, 4), np.float32), train_b_subjects=["y"],
            val_a=np.zeros((1, 4, 4), np.float32), val_b=np.zeros((1, 4, 4), np.float32), val_subjects=["z"],
            window_a=(0, 1), window_b=(0, 1))
    good = dict(task="t", domain_a="A", domain_b="B", pixel_spacing_mm=1, train_a=np.zeros((2, 4, 4), np.float32),
                train_a_subjects=["x", "x"], train_b=np.zeros((1, 4, 4), np.float32), train_b_subjects=["y"],
                val_a=np.zeros((1, 4, 4), np.float32), val_b=np.zeros((1, 4, 4), np.float32), val_subjects=["z"],
                window_a=(0, 1), window_b=(0, 1))
    cases = {"NaN": dict(train_a=np.full((2, 4, 4), np.nan, np.float32)),
             "same shape": dict(val_b=np.zeros((1, 4, 5), np.float32)),
             "one slice size": dict(train_b=np.zeros((1, 8, 8), np.float32)),
             "entries": dict(train_a_subjects=["x"]),
             "lo < hi": dict(window_b=(1, 1)),
             "floating": dict(train_a=np.zeros((2, 4, 4), np.int16))}
    for message, change in cases.items():
        with pytest.raises(StoreError, match=message):
            write_store(tmp_path / f"bad-{len(message)}.h5", **{**good, **change})
    assert not list(tmp_path.glob("bad-*"))   # nothing partial left behind


def _break(path, action):
    with h5py.File(path, "r+") as f:
        action(f)


def _replace(f, name, data):
    """Replace dataset ``name`` of an open store with ``data``."""
    del f[name]
    f.create_dataset(name, data=data)


BROKEN_CASES = {
    "missing dataset /train/B/images": lambda f: f.__delitem__("train/B/images"),
    "has rank 2": lambda f: _replace(f, "val/A/images", np.zeros((4, 64), "f4")),
    "expected floating point": lambda f: (f.__delitem__("train/A/images"),
                                          f.create_dataset("train/A/images", data=np.zeros((8, 64, 64), "i2"))),
    "NaN/Inf": lambda f: f["train/A/images"].__setitem__((0, 0, 0), np.inf),
    "differ in shape": lambda f: _replace(f, "val/B/images", np.zeros((3, 64, 64), "f4")),
    "is empty": lambda f: _replace(f, "train/B/images", np.zeros((0, 64, 64), "f4")),
    "entries but the images have": lambda f: _replace(f, "val/subjects", np.array([b"x"])),
    "missing attribute 'window'": lambda f: f["train/A"].attrs.__delitem__("window"),
    "missing file attribute 'task'": lambda f: f.attrs.__delitem__("task"),
    "unsupported format version": lambda f: f.attrs.__setitem__("version", 7),
}


@pytest.mark.parametrize("expected", sorted(BROKEN_CASES))
def test_validator_reports_each_broken_case(tmp_path, expected):
    path = write_phantom_store(tmp_path / "s.h5")
    _break(path, BROKEN_CASES[expected])
    problems = validate_store(path)
    assert any(expected in p for p in problems), problems
    assert validate_main([str(path)]) == 2
    with pytest.raises(StoreError, match="not a valid slice store"):
        with open_store(path):
            pass


def test_validator_rejects_missing_and_non_hdf5_files(tmp_path):
    assert validate_store(tmp_path / "nope.h5") == [f"{tmp_path / 'nope.h5'}: file not found"]
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"this is not hdf5" * 10)
    assert "not an HDF5 file" in validate_store(junk)[0]


def test_validate_cli_exit_codes_and_messages(tmp_path, phantom_store):
    ok = run_module("cycle_medgan_tf.data.validate", phantom_store)
    assert ok.returncode == 0 and ok.stdout.startswith("valid: ") and len(ok.stdout.strip().splitlines()) == 1
    path = write_phantom_store(tmp_path / "s.h5")
    _break(path, lambda f: (f.__delitem__("train/B/images"), f["train/A"].attrs.__delitem__("window")))
    bad = run_module("cycle_medgan_tf.data.validate", str(path))
    lines = bad.stderr.strip().splitlines()
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert any("missing dataset /train/B/images" in line for line in lines)
    assert any("'window'" in line for line in lines)
    missing = run_module("cycle_medgan_tf.data.validate", str(tmp_path / "absent.h5"))
    assert missing.returncode == 2 and "file not found" in missing.stderr and "Traceback" not in missing.stderr
