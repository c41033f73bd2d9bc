"""Training skeleton: smoke runs of every model train, checkpoint, resume exactly and export a model that loads
without the training code; config mismatches are refused; the schedule and history pool behave as specified."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from cycle_medgan_tf.config import resolve_config
from cycle_medgan_tf.export import load_translator
from cycle_medgan_tf.models.bigan import build_bigan, image_path_weights
from cycle_medgan_tf.models.pretrained import save_extractor_weights
from cycle_medgan_tf.catalogue import trainer_class
from cycle_medgan_tf.training.pool import HistoryPool
from cycle_medgan_tf.training.schedule import ConstantThenLinearDecay
from cycle_medgan_tf.training.trainer import TrainingError, run_training
from tests.conftest import run_module


@pytest.fixture(scope="module")
def extractor_file(tmp_path_factory):
    """A user-supplied (randomly initialised) extractor file with its checksum, as pretrain_bigan writes it."""
    tf.keras.utils.set_random_seed(0)
    path = str(tmp_path_factory.mktemp("extractor") / "feature_extractor.npz")
    meta = {"test": True, "image_size": 64, "pixel_spacing_mm": 4.0}     # the phantom store's scale at 64x64
    save_extractor_weights(path, image_path_weights(build_bigan(32, 16)["discriminator"]), meta)
    return path


def _config(model, store, workdir, extractor=None, **overrides):
    extra = {"extractor": extractor} if model == "cycle_medgan" else {}
    return resolve_config(model, "smoke", dict(data=store, workdir=str(workdir), **extra, **overrides))


def _weights(trainer_models):
    return {f"{name}/{i}": w.numpy().copy() for name, m in trainer_models.items() for i, w in enumerate(m.weights)}


@pytest.mark.parametrize("model", ["cyclegan", "cycle_medgan", "unit"])
def test_smoke_run_trains_checkpoints_resumes_and_exports(model, phantom_store, extractor_file, tmp_path):
    tf.config.experimental.enable_op_determinism()
    cfg = _config(model, phantom_store, tmp_path / "run", extractor_file)
    summary = run_training(trainer_class(model), cfg, log=lambda m: None)
    assert summary["status"] == "completed" and summary["step"] == 4
    run = tmp_path / "run"
    config = json.loads((run / "config.json").read_text())
    assert config["model"] == model and config["steps"] == 4 and config["image_size"] == 64
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert all(np.isfinite(r["g_total"]) and np.isfinite(r["d_total"]) for r in records)
    if model == "cycle_medgan":
        assert all(r["cycle_perceptual"] > 0 and r["cycle_style"] > 0 for r in records)
    assert not any("identity" in r for r in records)          # the faithful recipes have no identity loss
    assert sorted(os.listdir(run / "checkpoints"))[:1] == ["checkpoint"]
    assert list((run / "samples").glob("*.png")) and list((run / "tb").iterdir())

    # the export loads with TensorFlow alone and translates
    translator = load_translator(run, "a2b")
    x = np.random.default_rng(0).uniform(-1, 1, (3, 64, 64, 1)).astype(np.float32)
    y = translator(x)
    assert y.shape == x.shape and np.all(np.abs(y) <= 1)
    assert translator.manifest["task"] == "pet_ct" and translator.manifest["model"] == model

    # the same config again: nothing to train, resumes at the end and re-exports
    again = run_training(trainer_class(model), _config(model, phantom_store, run, extractor_file), log=lambda m: None)
    assert again["start_step"] == 4 and again["status"] == "completed"


@pytest.mark.parametrize("model", ["cyclegan"])
def test_paused_and_resumed_run_matches_straight_run(model, phantom_store, tmp_path):
    """Bit-identical final checkpoints (weights and Adam state) for a paused-and-resumed run. Only CycleGAN: UNIT
    training is not bitwise reproducible on TensorFlow's CPU kernels even without an interruption (two straight
    4-step smoke runs differ by up to 1.9 in Adam state and 5e-3 in outputs, measured 2026-11-25: its
    residual-block biases feed instance norm, so their gradient is pure rounding noise that Adam normalises into
    full-size updates). The resume mechanism is the same for every model."""
    tf.config.experimental.enable_op_determinism()
    straight_cfg = _config(model, phantom_store, tmp_path / "straight")
    run_training(trainer_class(model), straight_cfg, log=lambda m: None)
    paused = run_training(trainer_class(model), _config(model, phantom_store, tmp_path / "resumed"),
                          log=lambda m: None, max_new_steps=1)
    assert paused["status"] == "paused" and paused["step"] == 1
    resumed = run_training(trainer_class(model), _config(model, phantom_store, tmp_path / "resumed"),
                           log=lambda m: None)
    assert resumed["start_step"] == 1 and resumed["step"] == 4

    def final_state(run):
        reader = tf.train.load_checkpoint(str(tmp_path / run / "checkpoints"))
        names = [n for n, _ in tf.train.list_variables(str(tmp_path / run / "checkpoints"))]   # weights and Adam state
        skip = ("_CHECKPOINTABLE_OBJECT_GRAPH", "save_counter/.ATTRIBUTES/VARIABLE_VALUE")
        return {n: reader.get_tensor(n) for n in names if n not in skip}

    a, b = final_state("straight"), final_state("resumed")
    assert a.keys() == b.keys() and len(a) > 50
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_different_config_on_existing_workdir_is_refused(phantom_store, tmp_path):
    run_training(trainer_class("cyclegan"), _config("cyclegan", phantom_store, tmp_path / "run", steps=1),
                 log=lambda m: None)
    with pytest.raises(TrainingError, match="differs in: lambda_identity"):
        run_training(trainer_class("cyclegan"), _config("cyclegan", phantom_store, tmp_path / "run", steps=1,
                                                        lambda_identity=1.0), log=lambda m: None)
    with pytest.raises(TrainingError, match="differs in: steps"):
        run_training(trainer_class("cyclegan"), _config("cyclegan", phantom_store, tmp_path / "run", steps=2),
                     log=lambda m: None)
    summary = run_training(trainer_class("cyclegan"), _config("cyclegan", phantom_store, tmp_path / "run", steps=2),
                           overwrite=True, log=lambda m: None)
    assert summary["start_step"] == 0 and summary["step"] == 2


def test_train_cli_errors_are_one_line_exit_2(phantom_store, tmp_path):
    missing = run_module("cycle_medgan_tf.train", "--model=cyclegan", "--data=/nonexistent.h5",
                         f"--workdir={tmp_path}/r")
    assert missing.returncode == 2 and "file not found" in missing.stderr and "Traceback" not in missing.stderr
    bad_size = run_module("cycle_medgan_tf.train", "--model=cyclegan", f"--data={phantom_store}",
                          f"--workdir={tmp_path}/r", "--image_size=66")
    assert bad_size.returncode == 2 and "multiple of 4" in bad_size.stderr
    wrong = run_module("cycle_medgan_tf.train", "--model=cyclegan", f"--data={phantom_store}",
                       f"--workdir={tmp_path}/r", "--lambda_cp=1")
    assert wrong.returncode == 2 and "no cycle feature losses" in wrong.stderr
    bad_extractor = run_module("cycle_medgan_tf.train", "--model=cycle_medgan", f"--data={phantom_store}",
                               f"--workdir={tmp_path}/r2", "--profile=smoke", f"--extractor={tmp_path}/none.npz")
    assert bad_extractor.returncode == 2 and "not found" in bad_extractor.stderr
    assert "Traceback" not in bad_extractor.stderr


def test_corrupted_extractor_file_is_refused(extractor_file, tmp_path):
    from cycle_medgan_tf.models.pretrained import WeightsError, load_feature_extractor

    corrupt = tmp_path / "x.npz"
    data = bytearray(open(extractor_file, "rb").read())
    data[len(data) // 2] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    (tmp_path / "x.npz.sha256").write_text(open(extractor_file + ".sha256").read())
    with pytest.raises(WeightsError, match="corrupt"):
        load_feature_extractor(str(corrupt))


def test_schedule_is_constant_then_linear_to_zero():
    schedule = ConstantThenLinearDecay(2e-4, total_steps=100, decay_start_step=50)
    values = [float(schedule(s)) for s in (0, 49, 50, 75, 99)]
    np.testing.assert_allclose(values, [2e-4, 2e-4, 2e-4, 1e-4, 4e-6], rtol=1e-5)


def test_history_pool_fills_then_swaps_half_the_time():
    pool = HistoryPool(4, (2, 2, 1))
    fakes = [tf.fill((1, 2, 2, 1), float(i)) for i in range(200)]
    outs = [float(pool.query(f, tf.constant([0, i], tf.int64))[0, 0, 0, 0]) for i, f in enumerate(fakes)]
    assert outs[:4] == [0.0, 1.0, 2.0, 3.0] and int(pool.count.numpy()) == 4
    swapped = np.mean([o != i for i, o in enumerate(outs[4:], start=4)])
    assert 0.35 < swapped < 0.65
    assert all(o <= i for i, o in enumerate(outs))   # only past images come back
    assert HistoryPool(0, (2, 2, 1)).query(fakes[7], tf.constant([0, 0], tf.int64)).numpy().max() == 7.0
