"""The default cohort demands translation: anatomical variety, pathology, NAC/AC PET, MR motion severity,
seed-specific subjects and the paper-sized cohorts and step counts."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from cycle_medgan_tf.config import resolve_config
from cycle_medgan_tf.data.make_default import make_default
from cycle_medgan_tf.data.store import open_store
from cycle_medgan_tf.data.synth.anatomy import (MAX_TILT_DEG, SCALE_LIMIT, _random_geometry, random_anatomy,
                                                slice_heights)
from cycle_medgan_tf.data.synth.ct import simulate_ct
from cycle_medgan_tf.data.synth.pet import simulate_pet
from cycle_medgan_tf.data.synth.tasks import (MR_WINDOW, _subject_generators, cohort, generate_subject,
                                              split_subjects)
from cycle_medgan_tf.data.synth.template import load_template
from cycle_medgan_tf.evaluation.metrics import ssim
from cycle_medgan_tf.training.trainer import DataInfo, describe_steps, total_steps

SIZE = 64


def _geometries(n: int):
    template = load_template()
    return [_random_geometry(_subject_generators(0, "pet_ct", i)[0], template) for i in range(n)]


def test_head_shape_and_tilt_vary_as_a_cohort_does():
    geometries = _geometries(120)
    linear = np.array([np.linalg.inv(g.inverse_linear) for g in geometries])
    # scale per axis: the column norms of the linear map (rotation and a small shear do not change them much)
    scales = np.linalg.norm(linear, axis=1)
    assert np.all(np.abs(scales - 1.0) < SCALE_LIMIT + 0.05)
    assert 0.025 < scales.std() < 0.06, scales.std()
    # out-of-plane tilt: the angle between the template's z axis and the slice normal
    tilt = np.degrees(np.arccos(np.clip(np.abs(linear[:, 2, 2]) / np.linalg.norm(linear[:, :, 2], axis=1), 0, 1)))
    assert tilt.max() > 10.0 and tilt.max() < np.hypot(MAX_TILT_DEG, MAX_TILT_DEG) + 1.0 and np.median(tilt) > 3.0
    kinds = [g.blob.kind if g.blob is not None else "none" for g in geometries]
    assert 15 <= kinds.count("lesion") <= 50 and 6 <= kinds.count("cavity") <= 32, kinds
    skull = np.array([g.skull_mm for g in geometries])
    assert skull.min() < 5.5 and skull.max() > 8.0
    assert sum(g.sinus[0] == 0.0 for g in geometries) >= 3 and max(g.sinus[0] for g in geometries) > 10.0


def test_slice_heights_are_drawn_per_subject():
    heights = [slice_heights(np.random.default_rng(i), 12) for i in range(4)]
    for h in heights:
        assert np.all(np.diff(h) >= 0) and h.min() >= -16.0 and h.max() <= 70.0
    assert min(np.abs(heights[0] - h).max() for h in heights[1:]) > 3.0   # not fixed indices


def _lesion_subject():
    """(anatomy, CT rng, PET rng) of the first default pet_ct subject with a lesion, sliced through it."""
    template = load_template()
    for index in range(60):
        anatomy_rng, rng_a, rng_b = _subject_generators(0, "pet_ct", index)
        geo = _random_geometry(_subject_generators(0, "pet_ct", index)[0], template)   # a fresh copy of the stream
        if geo.blob is not None and geo.blob.kind == "lesion":
            z = geo.blob.centre[2]
            return random_anatomy(anatomy_rng, 3, z_range=(z - 4.0, z + 4.0)), rng_a, rng_b
    pytest.fail("no lesion among 60 subjects")


IN_PLANE = np.array([np.zeros((3, 3)), ndi.generate_binary_structure(2, 1), np.zeros((3, 3))], dtype=bool)


def test_lesion_is_hypodense_on_ct_and_hypometabolic_on_pet():
    anatomy, rng_pet, rng_ct = _lesion_subject()
    lesion = anatomy.fraction("lesion")
    assert lesion.max() > 0.95
    core = ndi.binary_erosion(lesion > 0.95, IN_PLANE, iterations=2)
    wm = (ndi.binary_erosion(anatomy.fraction("wm") > 0.95, IN_PLANE, iterations=2)
          & ~ndi.binary_dilation(lesion > 0.05, IN_PLANE, iterations=6))
    assert core.sum() > 30 and wm.sum() > 100
    ct = simulate_ct(anatomy, rng_ct)
    assert 5.0 < ct[core].mean() < 20.0 and ct[wm].mean() - ct[core].mean() > 5.0
    pet = simulate_pet(anatomy, rng_pet, 256, attenuation_corrected=True)
    core_pet = ndi.binary_erosion(core, IN_PLANE, iterations=3)
    assert pet[core_pet].mean() < 0.85 * pet[wm].mean()


@pytest.fixture(scope="module")
def pet_modes(tmp_path_factory):
    root = tmp_path_factory.mktemp("pet")
    return {mode: make_default("pet_ct", SIZE, root / f"{mode}.h5", subjects=3, slices=3, workers=1, pet=mode)
            for mode in ("nac", "ac")}


def _centre_to_rim(pet: np.ndarray, ct: np.ndarray) -> float:
    """Mean PET in the central half of the skull interior over that in its outer rim."""
    interior = ndi.binary_fill_holes(ct > 300) & ~(ct > 300)
    depth = ndi.distance_transform_edt(interior)
    centre, rim = depth > 0.5 * depth.max(), (depth > 0) & (depth <= 2)
    return float(pet[centre].mean() / pet[rim].mean())


def test_nac_and_ac_pet_switch(pet_modes):
    with open_store(pet_modes["nac"]) as nac, open_store(pet_modes["ac"]) as ac:
        assert nac.file.attrs["pet_attenuation_correction"] == "nac"
        assert ac.file.attrs["pet_attenuation_correction"] == "ac"
        assert tuple(nac.window_a) == (0.0, 1.5) and tuple(ac.window_a) == (0.0, 6.0)
        np.testing.assert_array_equal(nac.val_images("B")[()], ac.val_images("B")[()])   # same CT
        pet_nac, pet_ac, ct = nac.val_images("A")[()], ac.val_images("A")[()], nac.val_images("B")[()]
    assert np.mean(pet_nac > 1.5) < 1e-3 and pet_nac.max() < 0.6 * pet_ac.max()
    ratios = [(_centre_to_rim(n, c), _centre_to_rim(a, c)) for n, a, c in zip(pet_nac, pet_ac, ct)]
    for r_nac, r_ac in ratios:     # NAC: dark head centre against a bright rim
        assert r_nac < 0.75 * r_ac, ratios


def test_subject_ids_carry_the_seed(tmp_path):
    a = make_default("mr_motion", 32, tmp_path / "s0.h5", subjects=3, slices=1, workers=1, seed=0)
    b = make_default("mr_motion", 32, tmp_path / "s1.h5", subjects=3, slices=1, workers=1, seed=1)
    with open_store(a) as sa, open_store(b) as sb:
        ids_a = set(sa.train_subjects("A")) | set(sa.train_subjects("B")) | set(sa.val_subjects())
        ids_b = set(sb.train_subjects("A")) | set(sb.train_subjects("B")) | set(sb.val_subjects())
        assert len(ids_a) == 3 and not ids_a & ids_b
        assert all("-s0-" in i for i in ids_a) and all("-s1-" in i for i in ids_b)


def test_mr_motion_identity_is_in_the_target_range():
    """Copying the motion-corrupted input scores SSIM about 0.60-0.72 at 64 px over a cohort (mild to severe);
    severities spread evenly over consecutive subjects, so 10 of them must land in that band."""
    lo, hi = MR_WINDOW

    def model_range(x):
        return 2.0 * np.clip((x - lo) / (hi - lo), 0.0, 1.0) - 1.0

    per_subject = []
    for index in range(200, 210):
        images = generate_subject("mr_motion", index, "val", SIZE, 2, 3)
        per_subject.append(ssim(model_range(images["B"]), model_range(images["A"])).mean())
    per_subject = np.array(per_subject)
    assert 0.60 < per_subject.mean() < 0.72, per_subject
    assert per_subject.max() - per_subject.min() > 0.15, per_subject


def test_cohorts_have_the_papers_sizes_and_enough_validation_subjects():
    quick = cohort("pet_ct", "quick")
    assert len(split_subjects(quick.subjects)["val"]) >= 8
    assert len(split_subjects(cohort("mr_motion", "quick").subjects)["val"]) >= 8
    pet = cohort("pet_ct", "paper")
    split = split_subjects(pet.subjects)
    train = (len(split["A"]) + len(split["B"])) * pet.slices
    assert len(split["A"]) + len(split["B"]) == 38 and abs(train - 1935) < 20
    assert len(split["val"]) == 8 and abs(8 * (pet.val_slices or pet.slices) - 420) < 20
    mr = cohort("mr_motion", "paper")
    split = split_subjects(mr.subjects)
    assert len(split["A"]) + len(split["B"]) == 14 and 14 * mr.slices == 980
    assert len(split["val"]) == 3 and 3 * mr.val_slices == 105


def _info(task: str, n_a: int, n_b: int) -> DataInfo:
    return DataInfo(path="x.h5", task=task, domain_a="A", domain_b="B", window_a=(0, 1), window_b=(0, 1),
                    pixel_spacing_mm=1.0, store_size=256, n_train_a=n_a, n_train_b=n_b)


@pytest.mark.parametrize("task,steps", [("pet_ct", 1500), ("mr_motion", 750), ("my_task", 1500)])
def test_paper_profile_steps_follow_the_paper_whatever_the_store(task, steps):
    cfg = resolve_config("cyclegan", "paper")
    for n_a, n_b in ((40, 40), (969, 966), (5000, 3000)):
        assert total_steps(cfg, _info(task, n_a, n_b)) == steps
    assert f"= {steps} steps" in describe_steps(cfg, _info(task, 40, 40))
    store_based = resolve_config("cyclegan", "paper", {"epoch_basis": "store"})
    assert total_steps(store_based, _info(task, 640, 700)) == 500
    with pytest.raises(ValueError, match="epoch_basis"):
        resolve_config("cyclegan", "paper", {"epoch_basis": "dataset"})
