"""Learning curves (issue 13): curve points at the expected steps of a smoke run, equal to the exported model's
scores on the same tuning rows; training unchanged by them and by the per-term gradient norms (a paused-and-resumed
run with both is bit-identical to a straight run without), no point repeated or lost on resume; inference mode and
no state or RNG touched for every model; chief-only logging under a strategy; a leaking or mismatched tuning store
refused in one line; the subset spread over subjects; the renderer writes curves.png.

Subject ids of the tuning stores here are chosen by the tests (``t...``), disjoint from the phantom training
store's (``a0``, ``b0``, ``v0``, ...), except where a test shares one on purpose.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil

import numpy as np
import pytest
import tensorflow as tf

from cycle_medgan_tf.config import resolve_config
from cycle_medgan_tf.data.store import write_store
from cycle_medgan_tf.evaluation.curves import CurvesError, panel_grid, read_curve_records, render_curves
from cycle_medgan_tf.evaluation.metrics import psnr, ssim
from cycle_medgan_tf.export import load_translator
from cycle_medgan_tf.catalogue import trainer_class
from cycle_medgan_tf.training.curves import (CurveStoreError, LearningCurves, check_curve_store, curve_rows,
                                             curve_steps, identity_scores, learning_curves)
from cycle_medgan_tf.training.trainer import DataInfo, run_training, total_steps
from tests.conftest import phantom_slices, run_module
from tests.test_reliability import checkpoint_values, one_error_line


CURVE_KEYS = {"a2b_ssim", "a2b_psnr", "b2a_ssim", "b2a_psnr"}
VAL_SUBJECTS = ["t-v0"] * 3 + ["t-v1"] * 3


def write_tuning_store(path, size: int = 64, seed: int = 10, train_a_ids=("t-a0",) * 4, train_b_ids=("t-b0",) * 4,
                       val_ids=VAL_SUBJECTS, domain_b: str = "CT") -> str:
    """A pet_ct-like store like the phantom training store, from other phantoms and with the given subject ids."""
    return write_store(
        path, task="pet_ct", domain_a="PET", domain_b=domain_b, pixel_spacing_mm=256 / size,
        train_a=phantom_slices(len(train_a_ids), size, "PET", seed), train_a_subjects=list(train_a_ids),
        train_b=phantom_slices(len(train_b_ids), size, "CT", seed + 1), train_b_subjects=list(train_b_ids),
        val_a=phantom_slices(len(val_ids), size, "PET", seed + 2),
        val_b=phantom_slices(len(val_ids), size, "CT", seed + 2),
        val_subjects=list(val_ids), window_a=(0.0, 4.0), window_b=(-1000.0, 2000.0), overwrite=True)


@pytest.fixture(scope="module")
def tuning_store(tmp_path_factory) -> str:
    return write_tuning_store(tmp_path_factory.mktemp("tuning") / "tuning.h5")


def _config(model, store, workdir, **overrides):
    return resolve_config(model, "smoke", dict(data=store, workdir=str(workdir), **overrides))


def _short(store, workdir, **overrides):
    """Two smoke steps (checkpointed at step 2), with curves at every step when a tuning store is given."""
    return _config("cyclegan", store, workdir, steps=2, **overrides)


def _curve_records(run, kind="curve") -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("kind") == kind]


# ---- the tuning subset and the leak check (no training) --------------------------------------------------------

def test_curve_rows_are_deterministic_and_spread_over_subjects():
    subjects = ["s1"] * 10 + ["s0"] * 6 + ["s2"] * 1
    rows = curve_rows(subjects, 7)
    assert list(rows) == list(curve_rows(subjects, 7)) and len(set(rows)) == 7
    picked = [subjects[i] for i in rows]
    assert picked.count("s2") == 1 and picked.count("s0") == 3 and picked.count("s1") == 3
    assert list(rows[:3]) == [1, 5, 8]                      # s1's ten rows: evenly spaced and centred
    assert list(curve_rows(subjects, 3)) == [5, 13, 16]     # one (middle) slice per subject
    assert list(curve_rows(subjects, 40)) == list(range(17))


@pytest.mark.parametrize("profile,total,expected", [
    ("smoke", 4, [2, 4]), ("quick", 600, list(range(75, 601, 75))),
    ("paper", 50, [7, 14, 21, 28, 35, 42, 49, 50])])           # paper: 50 epochs of the default data, one batch each
def test_each_profile_has_about_eight_curve_points_ending_at_the_last_step(profile, total, expected):
    cfg = resolve_config("cyclegan", profile)
    assert cfg.steps in (0, total) and curve_steps(cfg.curve_every, total) == expected


def test_a_disjoint_tuning_store_is_accepted(phantom_store, tuning_store):
    check_curve_store(tuning_store, phantom_store)


@pytest.mark.parametrize("where", ["train_a_ids", "train_b_ids", "val_ids"])
def test_a_tuning_store_sharing_a_subject_is_refused(phantom_store, tmp_path, where):
    ids = dict(train_a_ids=("t-a0",) * 4, train_b_ids=("t-b0",) * 4, val_ids=list(VAL_SUBJECTS))
    ids[where] = list(ids[where])
    ids[where][-1] = {"train_a_ids": "b1", "train_b_ids": "v0", "val_ids": "a0"}[where]   # the training store's
    leaking = write_tuning_store(tmp_path / "leaking.h5", **ids)
    with pytest.raises(CurveStoreError, match="shares subject") as info:
        check_curve_store(leaking, phantom_store)
    assert "other subjects" in str(info.value) and "\n" not in str(info.value)


def test_the_training_store_itself_is_refused_also_through_a_link(phantom_store, tmp_path):
    with pytest.raises(CurveStoreError, match="is the training store itself"):
        check_curve_store(phantom_store, phantom_store)
    os.symlink(phantom_store, tmp_path / "link.h5")
    with pytest.raises(CurveStoreError, match="is the training store itself"):
        check_curve_store(str(tmp_path / "link.h5"), phantom_store)


@pytest.mark.parametrize("change,message", [(dict(size=32), "image size 32, not 64"),
                                            (dict(domain_b="MR"), "domains PET->MR, not PET->CT")])
def test_a_tuning_store_of_another_size_or_domain_is_refused(phantom_store, tmp_path, change, message):
    other = write_tuning_store(tmp_path / "other.h5", **change)
    with pytest.raises(CurveStoreError, match=message):
        check_curve_store(other, phantom_store)


def test_train_cli_refuses_a_leaking_curve_store_in_one_line(phantom_store, tmp_path):
    result = run_module("cycle_medgan_tf.train", "--model=cyclegan", "--profile=smoke", f"--data={phantom_store}",
                        f"--workdir={tmp_path}/run", f"--curve_data={phantom_store}")
    assert "is the training store itself" in one_error_line(result)
    assert not (tmp_path / "run").exists()


# ---- curves during training -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def straight_without_curves(phantom_store, tmp_path_factory):
    tf.config.experimental.enable_op_determinism()
    run = tmp_path_factory.mktemp("straight") / "run"
    run_training(trainer_class("cyclegan"), _short(phantom_store, run), log=lambda m: None)
    yield run
    shutil.rmtree(run, ignore_errors=True)            # CycleGAN checkpoints: 340 MB each


@pytest.fixture(scope="module")
def resumed_with_curves(phantom_store, tuning_store, tmp_path_factory):
    """The same 2 steps with curves at every step and gradient norms at the last, paused after step 1 (a curve
    point) and resumed."""
    tf.config.experimental.enable_op_determinism()
    run = tmp_path_factory.mktemp("curves") / "run"
    cfg = lambda: _short(phantom_store, run, curve_data=tuning_store, curve_slices=4, curve_every=1,
                         gradient_every=2)
    paused = run_training(trainer_class("cyclegan"), cfg(), log=lambda m: None, max_new_steps=1)
    assert paused["status"] == "paused" and paused["step"] == 1
    summary = run_training(trainer_class("cyclegan"), cfg(), log=lambda m: None)
    assert summary["start_step"] == 1 and summary["step"] == 2
    yield run, cfg
    shutil.rmtree(run, ignore_errors=True)


def test_curves_do_not_change_training_and_resume_exactly(straight_without_curves, resumed_with_curves):
    straight = checkpoint_values(straight_without_curves / "checkpoints")
    resumed = checkpoint_values(resumed_with_curves[0] / "checkpoints")
    assert straight.keys() == resumed.keys() and len(straight) > 400
    for name in straight:                          # weights, Adam slots, history pools and step: bit for bit
        np.testing.assert_array_equal(straight[name], resumed[name], err_msg=name)


def test_curve_points_at_the_expected_steps_score_the_exported_model(resumed_with_curves, tuning_store):
    run, _ = resumed_with_curves
    records = _curve_records(run)
    assert [r["step"] for r in records] == [1, 2]        # the pause step's point once, not again on resuming
    assert all(CURVE_KEYS <= r.keys() and r["slices"] == 4 for r in records)
    losses = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in losses if "kind" not in r] == [1, 2]
    gradients = _curve_records(run, "gradients")          # CycleGAN: the adversarial and cycle terms
    assert [r["step"] for r in gradients] == [2]
    for record in gradients:
        assert {k for k in record if k.startswith("grad_norm_")} == {"grad_norm_adversarial", "grad_norm_cycle",
                                                                      "grad_norm_total"}
        assert record["grad_share_adversarial"] + record["grad_share_cycle"] == pytest.approx(1.0, abs=2e-4)
        assert 0 < record["grad_norm_total"] <= record["grad_norm_adversarial"] + record["grad_norm_cycle"] + 1e-5

    # the last point is the exported (inference) model's score on the same tuning rows
    from cycle_medgan_tf.data.pipeline import val_arrays
    a, b, subjects = val_arrays(tuning_store, 64)
    rows = curve_rows(subjects, 4)
    assert sorted(set(subjects[rows])) == ["t-v0", "t-v1"]
    fake_b = load_translator(run, "a2b")(a[rows])[..., 0]
    fake_a = load_translator(run, "b2a")(b[rows])[..., 0]
    last = records[-1]
    np.testing.assert_allclose(last["a2b_ssim"], ssim(b[rows, ..., 0], fake_b).mean(), rtol=1e-5)
    np.testing.assert_allclose(last["a2b_psnr"], psnr(b[rows, ..., 0], fake_b).mean(), rtol=1e-5)
    np.testing.assert_allclose(last["b2a_ssim"], ssim(a[rows, ..., 0], fake_a).mean(), rtol=1e-5)
    identity = identity_scores(tuning_store, 4, 64)
    assert identity["a2b_ssim"] == pytest.approx(ssim(b[rows, ..., 0], a[rows, ..., 0]).mean())
    assert last["a2b_ssim"] != pytest.approx(identity["a2b_ssim"], abs=1e-3)

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(run / "tb"), size_guidance={"tensors": 0}).Reload()
    steps = [e.step for e in events.Tensors("curves/a2b_ssim")]
    assert sorted(steps) == [1, 2]


def test_a_resume_from_before_a_curve_point_neither_repeats_nor_loses_it(resumed_with_curves):
    """As after a kill between the checkpoints of steps 1 and 2: the newest checkpoint is gone, the run resumes at
    step 1, trims the point of step 2 with the losses and computes it again, to the same values."""
    run, cfg = resumed_with_curves
    before = _curve_records(run)
    for name in os.listdir(run / "checkpoints"):
        if name.startswith("ckpt-2."):
            os.remove(run / "checkpoints" / name)
    summary = run_training(trainer_class("cyclegan"), cfg(), log=lambda m: None)
    assert summary["start_step"] == 1 and summary["step"] == 2
    after = _curve_records(run)
    assert [r["step"] for r in after] == [1, 2]
    for old, new in zip(before, after):
        assert {k: old[k] for k in CURVE_KEYS} == {k: new[k] for k in CURVE_KEYS}
    assert [r["step"] for r in _curve_records(run, "gradients")] == [2]


def _rng_states() -> tuple:
    """Python's, NumPy's and TensorFlow's global random states."""
    return random.getstate(), str(np.random.get_state()), tf.random.get_global_generator().state.numpy().tolist()


@pytest.mark.parametrize("model", ["cycle_medgan", "unit"])
def test_evaluation_is_inference_and_touches_no_state_or_rng(model, phantom_store, tuning_store, tmp_path):
    cfg = _config(model, phantom_store, tmp_path, curve_data=tuning_store, curve_slices=5)
    info = DataInfo.from_store(phantom_store)
    trainer = trainer_class(model)(cfg, info)
    curves = LearningCurves(cfg, total_steps(cfg, info))
    tf.random.set_global_generator(tf.random.Generator.from_seed(1234))   # op determinism forbids an implicit one
    state, rng = [v.numpy().copy() for v in trainer.state_variables()], _rng_states()
    first = curves.record(4, trainer.export_models())
    second = curves.record(4, trainer.export_models())
    assert CURVE_KEYS <= first.keys() and first["slices"] == 5 and np.isfinite(first["a2b_psnr"])
    assert {k: first[k] for k in CURVE_KEYS} == {k: second[k] for k in CURVE_KEYS}   # UNIT: the latent mean
    assert _rng_states() == rng
    for before, v in zip(state, trainer.state_variables()):
        np.testing.assert_array_equal(before, v.numpy())


def test_curves_under_a_strategy_evaluate_on_the_chief_only(phantom_store, tuning_store, tmp_path):
    """Under MirroredStrategy (one device here: logical CPU devices cannot be made in a process whose TensorFlow is
    running; docs/DISTRIBUTED.md) the translators hold mirrored variables; non-chief workers check the store only."""
    from cycle_medgan_tf.training.distribute import Distribution

    cfg = _config("cyclegan", phantom_store, tmp_path, curve_data=tuning_store, curve_slices=3)
    info = DataInfo.from_store(phantom_store)
    dist = Distribution(tf.distribute.MirroredStrategy(devices=["/cpu:0"]))
    trainer = trainer_class("cyclegan")(cfg, info, dist)
    record = learning_curves(cfg, 4, chief=True).record(2, trainer.export_models())
    assert record["slices"] == 3 and all(np.isfinite(record[k]) for k in CURVE_KEYS)
    assert learning_curves(cfg, 4, chief=False) is None
    with pytest.raises(CurveStoreError, match="training store itself"):
        learning_curves(dataclasses.replace(cfg, curve_data=phantom_store), 4, chief=False)


# ---- the figure --------------------------------------------------------------------------------------------------

def _fake_run(path, seed: int, values: list[float], curves: bool = True):
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"seed": seed}))
    lines = [json.dumps({"step": s, "g_total": 1.0}) for s in (1, 2, 3, 4)]
    if curves:
        lines += [json.dumps({"kind": "curve", "step": 2 * (i + 1), "slices": 4, "a2b_ssim": v, "a2b_psnr": 20 * v,
                              "b2a_ssim": v / 2, "b2a_psnr": 10 * v, "eval_s": 0.1}) for i, v in enumerate(values)]
    (path / "metrics.jsonl").write_text("\n".join(lines) + "\n{\"kind\": \"cur")     # and a line cut short
    return str(path)


def test_render_curves_writes_a_png_with_a_panel_per_metric(tmp_path):
    import matplotlib.image

    runs = {"cyclegan": [_fake_run(tmp_path / "c0", 0, [0.5, 0.6]), _fake_run(tmp_path / "c1", 1, [0.4, 0.7])],
            "unit": [_fake_run(tmp_path / "u0", 0, [0.3, 0.35])]}
    assert [r["step"] for r in read_curve_records(runs["unit"][0])] == [2, 4]
    out = tmp_path / "curves.png"
    keys = render_curves(out, runs, references={"Identity": {"a2b_ssim": 0.26, "b2a_psnr": 4.0}})
    assert keys == ["a2b_ssim", "a2b_psnr", "b2a_ssim", "b2a_psnr"]
    image = matplotlib.image.imread(out)
    assert min(image.shape[:2]) > 200 and image[..., :3].std() > 0.05
    assert panel_grid(keys) == (2, 2, [0, 1, 2, 3])                       # one row per direction
    assert panel_grid([f"a2b_m{i}" for i in range(5)] + ["b2a_m0"]) == (3, 4, [0, 1, 2, 3, 4, 8])
    with pytest.raises(CurvesError, match="already exists"):
        render_curves(out, runs)
    assert render_curves(out, runs, metrics=["a2b_psnr"], overwrite=True) == ["a2b_psnr"]
    with pytest.raises(CurvesError, match="no learning-curve records"):
        render_curves(tmp_path / "x.png", {"unit": [_fake_run(tmp_path / "none", 0, [], curves=False)]})
    with pytest.raises(CurvesError, match="no run has curve values for a2b_vif"):
        render_curves(tmp_path / "y.png", runs, metrics=["a2b_vif"])
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "y.png").exists()
