"""tf.data pipeline: unpaired augmented batches that are a pure function of (seed, step), streaming equals
in-memory, augmentation keeps each domain's statistics, paired validation stays aligned."""

from __future__ import annotations

import json

import numpy as np
import tensorflow as tf

from cycle_medgan_tf.data import pipeline
from cycle_medgan_tf.data.store import open_store, to_model_range
from tests.conftest import run_module


def _take(ds, n):
    return [(a.numpy(), b.numpy()) for a, b in ds.take(n)]


def test_batches_have_model_shape_and_range(phantom_store):
    (a, b), = _take(pipeline.train_dataset(phantom_store, 64, 3, seed=0), 1)
    assert a.shape == b.shape == (3, 64, 64, 1) and a.dtype == np.float32
    assert a.min() >= -1 and a.max() <= 1 and b.min() >= -1 and b.max() <= 1


def test_resumed_stream_continues_exactly(phantom_store):
    straight = _take(pipeline.train_dataset(phantom_store, 64, 2, seed=5), 9)
    resumed = _take(pipeline.train_dataset(phantom_store, 64, 2, seed=5, start_step=6), 3)
    for (a1, b1), (a2, b2) in zip(straight[6:], resumed):
        np.testing.assert_array_equal(a1, a2)
        np.testing.assert_array_equal(b1, b2)
    other_seed = _take(pipeline.train_dataset(phantom_store, 64, 2, seed=6), 1)
    assert not np.array_equal(other_seed[0][0], straight[0][0])


def test_streaming_from_hdf5_equals_in_memory(phantom_store):
    memory = _take(pipeline.train_dataset(phantom_store, 64, 2, seed=1), 5)
    stream = _take(pipeline.train_dataset(phantom_store, 64, 2, seed=1, memory_limit_bytes=0), 5)
    for (a1, b1), (a2, b2) in zip(memory, stream):
        np.testing.assert_allclose(a1, a2, atol=1e-6)
        np.testing.assert_allclose(b1, b2, atol=1e-6)


def test_epoch_permutations_cover_every_slice_once_and_differ():
    p0 = pipeline.epoch_permutation(50, 3, 0).numpy()
    p1 = pipeline.epoch_permutation(50, 3, 1).numpy()
    q0 = pipeline.epoch_permutation(50, 4, 0).numpy()
    assert sorted(p0) == list(range(50)) and sorted(p1) == list(range(50))
    assert not np.array_equal(p0, p1) and not np.array_equal(p0, q0)


def test_domains_are_shuffled_independently(phantom_store):
    # A and B use different seeds, so their epoch orders differ (no pairing can leak in through the order).
    assert not np.array_equal(pipeline.epoch_permutation(8, 0, 0).numpy(), pipeline.epoch_permutation(8, 1, 0).numpy())


def test_augmentation_crops_flips_and_keeps_domain_statistics(phantom_store):
    with open_store(phantom_store) as store:
        raw_a = to_model_range(store.train_images("A")[()], store.window_a)
        raw_b = to_model_range(store.train_images("B")[()], store.window_b)
    batches = _take(pipeline.train_dataset(phantom_store, 64, 8, seed=2), 8)
    aug_a = np.concatenate([a for a, _ in batches])
    aug_b = np.concatenate([b for _, b in batches])
    load, margin = pipeline.load_size_for(64), (pipeline.load_size_for(64) - 64) // 2
    for raw, aug in ((raw_a, aug_a), (raw_b, aug_b)):
        zoomed = tf.image.resize(raw[..., None], (load, load), antialias=True).numpy()
        expected = zoomed[:, margin:margin + 64, margin:margin + 64]   # the average crop is the centre one
        assert abs(aug.mean() - expected.mean()) < 0.02, (aug.mean(), expected.mean())
        assert abs(aug.std() - expected.std()) < 0.05 * expected.std()
        assert aug.min() >= raw.min() - 0.02 and aug.max() <= raw.max() + 0.02   # no intensity drift
        # resize up + random crop: an augmented slice is (almost never) identical to a raw slice
        assert not any(np.allclose(aug[0, ..., 0], r, atol=1e-3) for r in raw)
    # flips happen about half the time: the left/right centre of mass of bright structures moves both ways
    x = np.arange(64)
    com = [(img[..., 0] + 1).sum(0) @ x / (img[..., 0] + 1).sum() for img in aug_b]
    assert np.std(com) > 0.1


def test_zoom_matches_xhujoy_ratio():
    assert pipeline.load_size_for(256) == 286 and pipeline.load_size_for(128) == 143
    img = tf.random.stateless_uniform((64, 64), seed=[1, 2], minval=-1, maxval=1)
    out = pipeline.augment(img, 64, tf.constant([3, 4], tf.int64))
    assert out.shape == (64, 64, 1)


def test_validation_is_paired_in_store_order(phantom_store):
    a, b, subjects = pipeline.val_arrays(phantom_store)
    with open_store(phantom_store) as store:
        np.testing.assert_allclose(a[..., 0], to_model_range(store.val_images("A")[()], store.window_a))
        np.testing.assert_allclose(b[..., 0], to_model_range(store.val_images("B")[()], store.window_b))
        assert list(subjects) == list(store.val_subjects())
    small, _, _ = pipeline.val_arrays(phantom_store, image_size=32, max_slices=2)
    assert small.shape == (2, 32, 32, 1)


def test_bench_pipeline_cli_reports_throughput(phantom_store):
    out = run_module("cycle_medgan_tf.bench.pipeline", f"--data={phantom_store}", "--batches=20", "--repeats=1")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["slices_per_s"] > 0
    bad = run_module("cycle_medgan_tf.bench.pipeline", "--data=/nonexistent.h5")
    assert bad.returncode == 2 and "file not found" in bad.stderr
