"""The feature extractor knows its native scale: metadata round-trips (shipped file, pretrain_bigan's export), a run
at a finer pixel spacing is area-down-sampled for it in the graph (gradients of both feature losses reach both
generators through the resize), an irreconcilable scale is refused in one line, and the degradation measurement of
docs/LOSS_WEIGHTS.md behaves."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from cycle_medgan_tf.config import resolve_config
from cycle_medgan_tf.models.bigan import build_bigan, image_path_weights
from cycle_medgan_tf.models.pretrained import (ExtractorScale, ExtractorScaleError, load_extractor_weights,
                                               load_feature_extractor, save_extractor_weights, scale_for_run)
from cycle_medgan_tf.training.trainer import run_training
from tests.conftest import run_module, synthetic_info, write_phantom_store


@pytest.fixture(scope="module")
def store_128(tmp_path_factory) -> str:
    """A phantom store at 128x128 over 256 mm: 2 mm pixels, half the shipped extractor's 4 mm."""
    return write_phantom_store(tmp_path_factory.mktemp("data128") / "phantom128.h5", size=128, n_train=2, n_val=2)


def test_shipped_extractor_knows_its_native_scale():
    _, meta = load_extractor_weights()
    assert meta["image_size"] == 64 and meta["pixel_spacing_mm"] == 4.0 and meta["steps"] == 2000


def test_metadata_round_trips(tmp_path):
    tf.keras.utils.set_random_seed(0)
    weights = image_path_weights(build_bigan(32, 16)["discriminator"])
    meta = {"image_size": 128, "pixel_spacing_mm": 2.0, "task": "bigan_ct", "steps": 3}
    path = str(tmp_path / "e.npz")
    save_extractor_weights(path, weights, meta)
    loaded, back = load_extractor_weights(path)
    assert back == meta and all(np.array_equal(a, b) for a, b in zip(weights, loaded))
    assert load_feature_extractor(path, 2.0, 128).extractor_scale == ExtractorScale(128, 2.0, 1)
    assert load_feature_extractor(path, 1.0, 256).extractor_scale.downsample == 2


@pytest.mark.parametrize("spacing,size,factor", [(4.0, 64, 1), (2.0, 128, 2), (1.0, 256, 4), (4.0004, 64, 1)])
def test_finer_runs_get_an_integer_down_sampling(spacing, size, factor):
    assert scale_for_run(ExtractorScale(64, 4.0), spacing, size, "x").downsample == factor


@pytest.mark.parametrize("spacing,size,reason", [(8.0, 32, "coarser"), (3.0, 96, "not an integer factor"),
                                                 (1.5, 128, "not an integer factor"), (0.5, 68, "not divisible")])
def test_irreconcilable_scales_are_refused(spacing, size, reason):
    with pytest.raises(ExtractorScaleError, match=reason):
        scale_for_run(ExtractorScale(64, 4.0), spacing, size, "x")


def test_an_extractor_without_scale_metadata_is_refused_for_a_run(tmp_path):
    path = str(tmp_path / "old.npz")
    save_extractor_weights(path, image_path_weights(build_bigan(32, 16)["discriminator"]), {"image_size": 64})
    with pytest.raises(ExtractorScaleError, match="pixel_spacing_mm"):
        load_feature_extractor(path, 4.0, 64)


def test_the_resize_is_area_down_sampling_in_front_of_the_native_extractor():
    x = tf.random.stateless_uniform((2, 128, 128, 1), [3, 4], -1.0, 1.0)
    resized = load_feature_extractor(None, 2.0, 128)
    native = load_feature_extractor(None)
    area = tf.image.resize(x, (64, 64), method="area")
    for got, want in zip(resized(x), native(area)):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-5)
    assert [tuple(f.shape[1:3]) for f in resized(x)] == [(32, 32), (16, 16), (8, 8), (4, 4)]


def test_both_feature_losses_reach_both_generators_through_the_resize():
    from cycle_medgan_tf.training.cycle import CycleTrainer

    # 32x32 at 2 mm (small and fast): the shipped 4 mm extractor sees the images down-sampled 2x
    info = synthetic_info(pixel_spacing_mm=2.0)
    trainer = CycleTrainer(resolve_config("cycle_medgan", "smoke", dict(image_size=32)), info)
    assert trainer.extractor.extractor_scale.downsample == 2
    assert trainer.manifest()["feature_extractor"]["downsample"] == 2
    a = tf.random.stateless_uniform((1, 32, 32, 1), [1, 2], -1.0, 1.0)
    b = tf.random.stateless_uniform((1, 32, 32, 1), [2, 3], -1.0, 1.0)
    with tf.GradientTape(persistent=True) as tape:
        out, _, _ = trainer.generator_losses(a, b)
    for loss in ("cycle_perceptual", "cycle_style"):
        for generator in (trainer.g_ab, trainer.g_ba):
            grads = tape.gradient(out[loss], generator.trainable_variables)
            missing = [v.path for v, g in zip(generator.trainable_variables, grads)
                       if g is None or not np.any(g.numpy())]
            assert not missing, f"{loss}: no gradient reaches {generator.name}: {missing[:3]}"
    del tape


def test_train_refuses_an_irreconcilable_scale_in_one_line(phantom_store, tmp_path):
    # 96x96 from the 64x64 store over 256 mm: 2.67 mm pixels, 1.5x finer than the extractor's 4 mm
    result = run_module("cycle_medgan_tf.train", "--model=cycle_medgan", "--profile=smoke", f"--data={phantom_store}",
                        f"--workdir={tmp_path / 'run'}", "--image_size=96")
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "1.5 is not an integer factor" in errors[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_pretrain_bigan_records_its_scale(phantom_store, tmp_path):
    from cycle_medgan_tf.training.bigan import BiGANTrainer

    cfg = resolve_config("bigan", "smoke", dict(data=phantom_store, workdir=str(tmp_path / "bigan"), steps=1,
                                                batch_size=2))
    summary = run_training(BiGANTrainer, cfg, log=lambda m: None)
    _, meta = load_extractor_weights(summary["export"])
    assert meta["image_size"] == 64 and meta["pixel_spacing_mm"] == 4.0 and meta["store_pixel_spacing_mm"] == 4.0
    assert load_feature_extractor(summary["export"], 2.0, 128).extractor_scale.downsample == 2


def test_degradation_measure_is_zero_without_degradation_and_scale_consistent_with_the_resize(phantom_store,
                                                                                              store_128):
    from cycle_medgan_tf.bench.feature_scale import measure

    rows = measure([phantom_store, store_128], max_slices=1)["results"]
    by = {(r["size"], r["degradation"], r["resize"]): r for r in rows}
    assert by[(128, "noise", "native")]["downsample"] == 2 and by[(64, "noise", "native")]["downsample"] == 1
    for kind in ("blur", "noise", "blur+noise"):      # at the extractor's own scale the resize is the identity
        assert by[(64, kind, "native")]["cycle_style"] == by[(64, kind, "none")]["cycle_style"] > 0
    for loss in ("cycle_perceptual", "cycle_style"):  # the same physical noise: nearer 1 with the resize than without
        native, none = (abs(np.log(by[(128, "noise", r)]["ratio_to_first"][loss])) for r in ("native", "none"))
        assert native < 0.5 * none, (loss, native, none)
    clean = measure([phantom_store], blur_mm=0.0, noise_std=0.0, max_slices=1)["results"]
    assert all(r["cycle_perceptual"] == 0 and r["cycle_style"] == 0 for r in clean)


def test_feature_scale_command_refuses_a_store_the_extractor_cannot_meet(tmp_path):
    coarse = write_phantom_store(tmp_path / "p32.h5", size=32, n_train=2, n_val=2)     # 8 mm pixels
    result = run_module("cycle_medgan_tf.bench.feature_scale", f"--data={coarse}")
    assert result.returncode == 2 and "coarser than the extractor" in result.stderr
    assert "Traceback" not in result.stderr
