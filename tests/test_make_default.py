"""Default datasets: format, splits, pairing, determinism and physical plausibility, at 64 x 64."""

from __future__ import annotations

import filecmp
import os

import numpy as np
import pytest
from scipy import ndimage as ndi

from cycle_medgan_tf.data.make_default import (DefaultDataError, default_cache_path, ensure_default,
                                               make_default)
from cycle_medgan_tf.data.store import open_store
from cycle_medgan_tf.data.synth.anatomy import random_anatomy
from cycle_medgan_tf.data.synth.fields import area_mean
from cycle_medgan_tf.data.synth.mr import PHASE_ENCODE_AXIS, corrupt_slice
from cycle_medgan_tf.data.synth.pet import simulate_pet
from cycle_medgan_tf.data.synth.projector import Projector
from cycle_medgan_tf.data.synth.tasks import _subject_generators, split_subjects
from cycle_medgan_tf.data.validate import validate_store
from tests.conftest import run_module

SIZE = 64
SLICES = 4


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> dict[str, str]:
    """One small store per task (3 subjects: 1 train A, 1 train B, 1 validation)."""
    root = tmp_path_factory.mktemp("default")
    return {task: make_default(task, SIZE, root / f"{task}.h5", subjects=3, slices=SLICES, workers=1)
            for task in ("pet_ct", "mr_motion", "bigan_ct")}


def _read(path):
    with open_store(path) as store:
        return {"store": {k: getattr(store, k) for k in ("task", "domain_a", "domain_b", "window_a", "window_b",
                                                         "pixel_spacing_mm", "image_size")},
                "train_a": store.train_images("A")[()], "train_b": store.train_images("B")[()],
                "val_a": store.val_images("A")[()], "val_b": store.val_images("B")[()],
                "subjects": {"A": set(store.train_subjects("A")), "B": set(store.train_subjects("B")),
                             "val": list(store.val_subjects())},
                "attrs": dict(store.file.attrs)}


@pytest.fixture(scope="module")
def data(stores) -> dict[str, dict]:
    return {task: _read(path) for task, path in stores.items()}


@pytest.mark.parametrize("task,domains", [("pet_ct", ("PET", "CT")), ("mr_motion", ("MR_motion", "MR")),
                                          ("bigan_ct", ("CT", "CT"))])
def test_store_fields(stores, data, task, domains):
    assert validate_store(stores[task]) == []
    d = data[task]
    assert d["store"]["task"] == task
    assert (d["store"]["domain_a"], d["store"]["domain_b"]) == domains
    assert d["store"]["image_size"] == SIZE and d["store"]["pixel_spacing_mm"] == pytest.approx(256 / SIZE)
    for key in ("train_a", "train_b", "val_a", "val_b"):
        assert d[key].shape == (SLICES, SIZE, SIZE) and d[key].dtype == np.float32
        assert np.all(np.isfinite(d[key]))
    lo, hi = d["store"]["window_a"]
    assert lo < hi and d["attrs"]["seed"] == 0 and d["attrs"]["slices_per_subject"] == SLICES
    assert d["attrs"]["generator_version"] >= 2


def test_windows_cover_the_data(data):
    """Almost nothing falls outside a domain's window (so little is clipped in model range)."""
    for d in data.values():
        for key, window in (("train_a", d["store"]["window_a"]), ("train_b", d["store"]["window_b"])):
            margin = 0.01 * (window[1] - window[0])  # noise around air or zero may dip just below lo
            outside = np.mean((d[key] < window[0] - margin) | (d[key] > window[1]))
            assert outside < 1e-3, (key, window)


def test_split_of_twelve_subjects_is_five_five_two():
    split = split_subjects(12)
    assert [len(split[r]) for r in ("A", "B", "val")] == [5, 5, 2]
    for n in (3, 7, 12, 40):
        split = split_subjects(n)
        members = split["A"] + split["B"] + split["val"]
        assert sorted(members) == list(range(n)) and min(len(v) for v in split.values()) >= 1
    with pytest.raises(ValueError):
        split_subjects(2)


def test_subjects_disjoint_between_splits_and_cohorts(data):
    for d in data.values():
        a, b, val = d["subjects"]["A"], d["subjects"]["B"], set(d["subjects"]["val"])
        assert a and b and val and not (a & b) and not (a & val) and not (b & val)
    def everyone(task):
        subjects = data[task]["subjects"]
        return subjects["A"] | subjects["B"] | set(subjects["val"])

    assert not everyone("pet_ct") & everyone("bigan_ct")


def _corr(x, y):
    return float(np.corrcoef(x.ravel(), y.ravel())[0, 1])


def _skull_interior(ct: np.ndarray) -> np.ndarray:
    """The brain: the largest connected soft-tissue region (-50..150 HU), eroded away from its border (a
    bone ring need not be closed at 4 mm: a frontal sinus thins its walls)."""
    soft = ndi.binary_erosion((ct > -50) & (ct < 150), iterations=1)
    labels, n = ndi.label(soft)
    if n == 0:
        return soft
    largest = 1 + int(np.argmax(ndi.sum(soft, labels, range(1, n + 1))))
    return ndi.binary_erosion(labels == largest, iterations=1)


def test_pet_ct_validation_rows_are_paired(data):
    """Inside the skull, PET row i follows CT row i (grey matter high and CSF low in both): the correlation is
    high and, on average, far above that with the other rows (slice heights are random, so two rows of a
    subject may be close; the diagonal must still be the row's best match)."""
    pet, ct = data["pet_ct"]["val_a"], data["pet_ct"]["val_b"]
    corr = np.array([[_corr(p[_skull_interior(c)], c[_skull_interior(c)]) for c in ct] for p in pet])
    off_diagonal = corr[~np.eye(len(pet), dtype=bool)]
    for i in range(len(pet)):
        assert corr[i, i] > 0.4 and corr[i, i] >= corr[i].max() - 0.02, corr
    assert np.diag(corr).mean() > off_diagonal.mean() + 0.2, corr


def test_mr_motion_pairs_align_and_ghost_along_phase_encoding(data):
    moved, still = data["mr_motion"]["val_a"], data["mr_motion"]["val_b"]
    for i in range(len(moved)):
        assert _corr(moved[i], still[i]) > 0.85
        head = ndi.binary_dilation(still[i] > 0.15 * still[i].max(), iterations=2)
        rows, cols = np.flatnonzero(head.any(axis=1)), np.flatnonzero(head.any(axis=0))
        diff = np.abs(moved[i] - still[i])
        beside = np.zeros_like(head)  # background next to the head along the phase-encode axis (columns)
        beside[rows[0]:rows[-1] + 1, :] = True
        beside[:, cols[0]:cols[-1] + 1] = False
        above = np.zeros_like(head)  # background next to the head along the read-out axis (rows)
        above[:, cols[0]:cols[-1] + 1] = True
        above[rows[0]:rows[-1] + 1, :] = False
        assert beside.sum() > 20 and above.sum() > 20
        assert diff[beside].mean() > 2.0 * diff[above].mean(), i


def test_motion_takes_whole_phase_encode_lines_and_keeps_the_centre_block():
    image = ndi.gaussian_filter(np.random.default_rng(0).random((64, 64)), 2.0)
    for seed in range(5):
        out = corrupt_slice(image, np.random.default_rng(seed), max_rotation_deg=6.0, max_translation_px=2.0)
        k_out, k_in = (np.fft.fftshift(np.fft.fft2(x)) for x in (out, image))
        lines = np.moveaxis(np.isclose(k_out, k_in, rtol=1e-6, atol=1e-9), PHASE_ENCODE_AXIS, 0)
        unmoved = lines.all(axis=1)
        assert np.array_equal(unmoved, lines.any(axis=1))  # each phase-encode line from a single pose
        kept = np.flatnonzero(unmoved)
        assert 32 in kept and np.all(np.diff(kept) == 1) and len(kept) < 64  # one centre block, rest moved


def test_bigan_ct_validation_domains_identical(data):
    d = data["bigan_ct"]
    np.testing.assert_array_equal(d["val_a"], d["val_b"])


@pytest.mark.parametrize("task,key", [("pet_ct", "train_b"), ("pet_ct", "val_b"), ("bigan_ct", "train_a")])
def test_ct_hounsfield_units_are_physical(data, task, key):
    for ct in data[task][key]:
        assert np.percentile(ct, 99.9) > 700 and ct.max() < 2000
        corners = np.concatenate([ct[:4, :4].ravel(), ct[:4, -4:].ravel(), ct[-4:, :4].ravel(), ct[-4:, -4:].ravel()])
        assert abs(corners.mean() + 1000) < 10
        interior = _skull_interior(ct)
        assert interior.sum() > 100
        lo, median, hi = np.percentile(ct[interior], [5, 50, 95])
        assert 0 < median < 60 and lo > -10 and hi < 60


def test_pet_grey_matter_brighter_than_white_matter():
    """Pooled over subjects, PET in grey-matter cores is more than twice that in white-matter cores."""
    gm_values, wm_values = [], []
    for index in range(3):
        anatomy_rng, pet_rng, _ = _subject_generators(0, "pet_ct", index)
        anatomy = random_anatomy(anatomy_rng, SLICES)
        pet = simulate_pet(anatomy, pet_rng, SIZE)
        assert np.all(np.isfinite(pet)) and pet.min() >= 0
        gm = area_mean(anatomy.fraction("gm"), 256 // SIZE)
        wm = area_mean(anatomy.fraction("wm"), 256 // SIZE)
        gm_values.append(pet[gm > 0.9])
        wm_values.append(pet[wm > 0.95])
    ratio = np.concatenate(gm_values).mean() / np.concatenate(wm_values).mean()
    assert ratio > 2.0, ratio


def test_output_identical_for_any_worker_count(tmp_path):
    one = make_default("pet_ct", SIZE, tmp_path / "w1.h5", subjects=3, slices=2, seed=5, workers=1)
    two = make_default("pet_ct", SIZE, tmp_path / "w2.h5", subjects=3, slices=2, seed=5, workers=2)
    assert filecmp.cmp(one, two, shallow=False)
    other = make_default("pet_ct", SIZE, tmp_path / "s6.h5", subjects=3, slices=2, seed=6, workers=1)
    with open_store(one) as a, open_store(other) as b:
        assert not np.array_equal(a.val_images("B")[()], b.val_images("B")[()])


def test_make_default_refuses_to_overwrite_and_bad_arguments(tmp_path):
    out = tmp_path / "exists.h5"
    out.write_bytes(b"keep")
    with pytest.raises(DefaultDataError, match="already exists"):
        make_default("mr_motion", SIZE, out, subjects=3, slices=1)
    assert out.read_bytes() == b"keep"
    for kwargs in ({"task": "ct_pet"}, {"size": 100}, {"subjects": 2}, {"slices": 0}):
        args = {"task": "mr_motion", "size": SIZE, "out": tmp_path / "x.h5", **kwargs}
        with pytest.raises(DefaultDataError):
            make_default(**args)


def test_ensure_default_generates_once_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CYCLE_MEDGAN_CACHE", str(tmp_path / "cache"))
    path = default_cache_path("mr_motion", 32, subjects=3, slices=1)
    assert path.startswith(str(tmp_path / "cache")) and not os.path.exists(path)
    assert ensure_default("mr_motion", 32, subjects=3, slices=1, workers=1) == path
    stamp = os.stat(path).st_mtime_ns
    assert ensure_default("mr_motion", 32, subjects=3, slices=1, workers=1) == path
    assert os.stat(path).st_mtime_ns == stamp


def test_projector_matches_skimage_radon():
    from skimage.transform import radon

    proj = Projector(65, 1.0, 32, 16)
    yy, xx = np.mgrid[:65, :65]
    image = (np.hypot(yy - 25, xx - 38) < 9) * 2.0 + ((abs(yy - 40) < 6) & (abs(xx - 24) < 12)) * 1.0
    image = ndi.gaussian_filter(image, 1.0) * proj.fov
    ours = proj.forward(proj.to_pixels(image[None]))[:, 0].reshape(32, 65)
    reference = radon(image, proj.angles_deg, circle=True).T
    assert np.sqrt(np.mean((ours - reference) ** 2)) < 0.03 * reference.max()


def test_cli_writes_store_and_preview(tmp_path):
    out, png = tmp_path / "mr.h5", tmp_path / "mr.png"
    result = run_module("cycle_medgan_tf.data.make_default", "--task=mr_motion", "--size=32", f"--out={out}",
                        "--subjects=3", "--slices=2", "--workers=1", f"--preview={png}")
    assert result.returncode == 0, result.stderr
    assert validate_store(out) == [] and png.stat().st_size > 5000
    again = run_module("cycle_medgan_tf.data.make_default", "--task=mr_motion", "--size=32", f"--out={out}")
    assert again.returncode == 2 and "already exists" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1 and "Traceback" not in again.stderr


def test_cli_bad_task_is_one_line_exit_2(tmp_path):
    result = run_module("cycle_medgan_tf.data.make_default", "--task=spect", f"--out={tmp_path / 'x.h5'}")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "spect" in result.stderr
    assert not (tmp_path / "x.h5").exists()
