"""Intensity windows with a piecewise-linear transfer (data/window.py): the map, the store, evaluation, export."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from cycle_medgan_tf.data.checks import validate_store
from cycle_medgan_tf.data.store import from_model_range, open_store, to_model_range, write_store
from cycle_medgan_tf.data.window import (Window, WindowError, as_window, linear_model_range, manifest_entries,
                                         manifest_window, parse_transfer)
from tests.conftest import phantom_slices, run_module

CT = (-1000.0, 2000.0)
SOFT = "-200:-0.6,300:0.6"


def _store(path, window_b) -> str:
    """The conftest phantom store's content with domain B's window ``window_b``."""
    return write_store(
        path, task="pet_ct", domain_a="PET", domain_b="CT", pixel_spacing_mm=4.0,
        train_a=phantom_slices(8, 64, "PET", 0), train_a_subjects=[f"a{i // 4}" for i in range(8)],
        train_b=phantom_slices(8, 64, "CT", 1), train_b_subjects=[f"b{i // 4}" for i in range(8)],
        val_a=phantom_slices(4, 64, "PET", 2), val_b=phantom_slices(4, 64, "CT", 2),
        val_subjects=[f"v{i // 2}" for i in range(4)], window_a=(0.0, 4.0), window_b=window_b, overwrite=True)


def test_a_linear_window_maps_exactly_as_before():
    hu = np.linspace(-1500, 2500, 4001, dtype=np.float32).reshape(1, 1, -1)
    expected = np.clip((hu - np.float32(-1000.0)) * np.float32(2.0 / 3000.0) - np.float32(1.0), -1, 1)
    assert np.array_equal(to_model_range(hu, CT), expected)
    assert np.array_equal(to_model_range(hu, Window(*CT)), expected)
    x = np.linspace(-1, 1, 101, dtype=np.float32)
    assert np.array_equal(from_model_range(x, CT), (x + np.float32(1)) * np.float32(1500.0) + np.float32(-1000.0))


def test_a_transfer_hits_its_knots_inverts_and_gives_soft_tissue_range():
    window = parse_transfer(SOFT, CT)
    assert window == CT and window.knots == (-200.0, 300.0) and window.levels == (-0.6, 0.6)
    knots = np.array([-1000.0, -200.0, 300.0, 2000.0], dtype=np.float32)
    np.testing.assert_allclose(to_model_range(knots, window), [-1.0, -0.6, 0.6, 1.0], atol=1e-7)
    hu = np.linspace(-1000, 2000, 3001, dtype=np.float32)
    model = to_model_range(hu, window)
    assert np.all(np.diff(model) > 0)                                         # strictly monotone
    np.testing.assert_allclose(from_model_range(model, window), hu, atol=0.02)
    assert to_model_range(np.float32([-3000, 5000]), window).tolist() == [-1.0, 1.0]   # clipped outside
    # grey (40 HU) vs white matter (25 HU): 0.010 of the model range linearly, 0.036 with the transfer
    linear_gap, transfer_gap = (np.diff(to_model_range(np.float32([25, 40]), w))[0] for w in (CT, window))
    assert linear_gap == pytest.approx(0.01, abs=1e-4) and transfer_gap == pytest.approx(0.036, abs=1e-4)
    # Table I's metrics see the linear window whatever the transfer
    np.testing.assert_allclose(linear_model_range(model, window), to_model_range(hu, CT), atol=2e-5)
    assert linear_model_range(model, Window(*CT)) is model


@pytest.mark.parametrize("text, message", [
    ("-200", "VALUE:LEVEL pairs"), ("a:b", "VALUE:LEVEL pairs"),
    ("-2000:-0.6", "increase strictly inside the window"), ("300:0.6,-200:-0.6", "increase strictly inside"),
    ("-200:0.6,300:-0.6", "levels must increase"), ("-200:-1.0", "levels must increase"),
])
def test_bad_transfers_are_refused_with_the_reason(text, message):
    with pytest.raises(WindowError, match=message):
        parse_transfer(text, CT)


def test_the_store_keeps_the_transfer_and_validates_it(tmp_path):
    path = _store(tmp_path / "t.h5", parse_transfer(SOFT, CT))
    assert validate_store(path) == []
    with open_store(path) as store:
        assert store.window_b.same_as(parse_transfer(SOFT, CT)) and store.window_a.linear
        assert not store.window_b.same_as(CT)
    with h5py.File(path, "r+") as f:
        f["train/B"].attrs["transfer"] = np.array([[300.0, -200.0], [-0.6, 0.6]])
    assert any("transfer on /train/B: transfer knots must increase" in p for p in validate_store(path))
    with h5py.File(_store(tmp_path / "linear.h5", CT), "r") as f:
        assert "transfer" not in f["train/B"].attrs                              # linear stores are unchanged


def test_manifest_entries_round_trip_and_stay_unchanged_for_linear_windows():
    window = parse_transfer(SOFT, CT)
    entries = manifest_entries("b", window)
    assert manifest_window(json.loads(json.dumps(entries)), "b").same_as(window)
    assert manifest_entries("b", CT) == {"window_b": [-1000.0, 2000.0]}
    assert manifest_window({"window_b": [-1000, 2000]}, "b").linear
    with pytest.raises(WindowError):
        as_window(CT, [[1.0, 2.0]])


def test_table_i_metrics_are_computed_on_the_linear_window_under_a_transfer(tmp_path):
    """The Identity row copies the input in model range; with a transfer that copy means other HU, and the paper's
    SSIM/PSNR of it must be those of the linear window [lo, hi] on those HU."""
    from cycle_medgan_tf.evaluation.metrics import psnr, ssim

    window = parse_transfer(SOFT, CT)
    store = _store(tmp_path / "transfer.h5", window)
    result = run_module("cycle_medgan_tf.evaluate", f"--data={store}", "--identity", f"--out={tmp_path / 'out'}")
    assert result.returncode == 0, result.stderr
    with open(tmp_path / "out" / "table1.json") as f:
        table = json.load(f)
    with open_store(store) as s:
        inputs, target_hu = to_model_range(s.val_images("A")[()], s.window_a), s.val_images("B")[()]
    copied_hu = from_model_range(inputs, window)
    expected = dict(ssim=ssim(to_model_range(target_hu, CT), to_model_range(copied_hu, CT)).mean(),
                    psnr=psnr(to_model_range(target_hu, CT), to_model_range(copied_hu, CT)).mean())
    wrong = ssim(to_model_range(target_hu, window), inputs).mean()            # on the transfer's own scale
    for metric, value in expected.items():
        assert table["models"]["Identity"][metric]["mean"] == pytest.approx(value, rel=1e-5), metric
    assert abs(table["models"]["Identity"]["ssim"]["mean"] - wrong) > 1e-3
    assert table["metric_conventions"]["evaluation"]["transfer_target"] == [[-200.0, -0.6], [300.0, 0.6]]


def test_a_run_trained_with_a_transfer_exports_it_and_is_refused_on_a_linear_store(tmp_path):
    transfer_store, linear_store = _store(tmp_path / "t.h5", parse_transfer(SOFT, CT)), _store(tmp_path / "l.h5", CT)
    run = tmp_path / "run"
    trained = run_module("cycle_medgan_tf.train", "--model=cyclegan", "--profile=smoke", "--steps=1",
                         f"--data={transfer_store}", f"--workdir={run}")
    assert trained.returncode == 0, trained.stderr
    with open(run / "export" / "manifest.json") as f:
        assert manifest_window(json.load(f), "b").same_as(parse_transfer(SOFT, CT))
    refused = run_module("cycle_medgan_tf.evaluate", f"--data={linear_store}", f"--runs=cyclegan={run}",
                         f"--out={tmp_path / 'eval'}")
    assert refused.returncode == 2 and "window_b" in refused.stderr and "Traceback" not in refused.stderr
    accepted = run_module("cycle_medgan_tf.evaluate", f"--data={transfer_store}", f"--runs=cyclegan={run}",
                          f"--out={tmp_path / 'eval2'}")
    assert accepted.returncode == 0, accepted.stderr


def test_make_default_refuses_a_bad_transfer_in_one_line(tmp_path):
    result = run_module("cycle_medgan_tf.data.make_default", "--task=pet_ct", "--size=32", "--subjects=3",
                        "--slices=2", f"--out={tmp_path / 'd.h5'}", "--transfer_b=300:0.6,-200:-0.6")
    assert result.returncode == 2 and "--transfer_b" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "d.h5").exists()
