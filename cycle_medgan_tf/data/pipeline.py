"""tf.data input pipeline over a format-v1 slice store.

Training batches are unpaired: domains A and B are drawn from independent shuffles (each over all of its
subjects), with xhujoy's augmentation (resize up by 286/256, random crop back, random left-right flip) applied
the same way to both domains. Every batch is a pure function of ``(seed, step)``: per-epoch permutations and
augmentation draws come from stateless random ops, so a run resumed at step ``k`` sees exactly the batches an
uninterrupted run would have seen.

Stores that fit in memory (``memory_limit_bytes``) are loaded once; larger ones are streamed slice by slice
from HDF5. The store must have been checked by the caller (``data.store.check_store`` or ``validate_store``, once
per run at its entry point); the pipeline does not validate it again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import h5py
import numpy as np
import tensorflow as tf

from cycle_medgan_tf.data.store import open_store, to_model_range

LOAD_RATIO = 286.0 / 256.0          # xhujoy: load_size 286 for fine_size 256
DEFAULT_MEMORY_LIMIT = 2 * 2**30     # bytes of float32 slices kept in memory per domain


def load_size_for(image_size: int) -> int:
    """Size the slice is resized to before the random crop (286 for 256, as xhujoy)."""
    return int(round(image_size * LOAD_RATIO))


@dataclass(frozen=True)
class DomainSource:
    """Where one domain's training slices come from: a path/dataset name, count, window and slice size."""

    path: str
    dataset: str
    count: int
    window: tuple[float, float]
    size: int
    in_memory: np.ndarray | None    # (N, H, W) in [-1, 1] when loaded


def _domain_source(path: str, split: str, domain: str, memory_limit_bytes: int) -> DomainSource:
    with open_store(path, validate=False) as store:
        images = store.train_images(domain) if split == "train" else store.val_images(domain)
        window = store.window(domain)
        nbytes = images.size * 4
        loaded = to_model_range(images[()], window) if nbytes <= memory_limit_bytes else None
        return DomainSource(path=path, dataset=images.name, count=images.shape[0], window=window,
                            size=images.shape[1], in_memory=loaded)


def _slice_reader(source: DomainSource):
    """A graph function index -> (H, W) slice in [-1, 1]."""
    if source.in_memory is not None:
        table = tf.constant(source.in_memory)
        return lambda index: tf.gather(table, index)

    handle: dict[str, h5py.Dataset] = {}

    def read(index):
        ds = handle.get("ds")
        if ds is None:
            ds = handle["ds"] = h5py.File(source.path, "r")[source.dataset]
        return to_model_range(ds[int(index)], source.window)

    def reader(index):
        image = tf.numpy_function(read, [index], tf.float32, stateful=False)
        image.set_shape((source.size, source.size))
        return image

    return reader


def epoch_permutation(count: int, seed: int, epoch) -> tf.Tensor:
    """Deterministic permutation of ``range(count)`` for one epoch."""
    keys = tf.random.stateless_uniform([count], seed=tf.stack([tf.cast(seed, tf.int64), tf.cast(epoch, tf.int64)]))
    return tf.argsort(keys)


def augment(image: tf.Tensor, image_size: int, seed: tf.Tensor, train: bool = True) -> tf.Tensor:
    """Resize to ``image_size`` (area-averaging when shrinking); when training, xhujoy's resize-up, random crop and
    random left-right flip drawn from the stateless ``seed``. (H, W) in, (S, S, 1) out."""
    image = image[..., None]
    if train:
        load = load_size_for(image_size)
        image = tf.image.resize(image, (load, load), method="bilinear", antialias=True)
        image = tf.image.stateless_random_crop(image, (image_size, image_size, 1), seed=seed)
        image = tf.image.stateless_random_flip_left_right(image, seed=seed + 1)
    elif image.shape[0] != image_size:
        image = tf.image.resize(image, (image_size, image_size), method="area" if image.shape[0] > image_size
                                else "bilinear", antialias=True)
    return tf.clip_by_value(image, -1.0, 1.0)


def shuffled_positions(count: int, seed: int, start_sample: int = 0) -> tf.data.Dataset:
    """Endless ``(position, index)`` pairs: the slice indices of successive epochs, each epoch a fresh permutation
    of ``range(count)`` (:func:`epoch_permutation`), numbered from ``start_sample`` on."""
    indices = (tf.data.Dataset.range(2**62)
               .flat_map(lambda epoch: tf.data.Dataset.from_tensor_slices(epoch_permutation(count, seed, epoch))))
    if start_sample:
        indices = indices.skip(start_sample)
    return indices.enumerate(start=start_sample)


def augment_sample(image: tf.Tensor, image_size: int, seed: int, position) -> tf.Tensor:
    """Training :func:`augment` with the draw of sample ``position`` of the stream seeded ``seed``."""
    element_seed = tf.stack([tf.cast(seed, tf.int64) + 7919, tf.cast(position, tf.int64)])
    return augment(image, image_size, element_seed, train=True)


def _domain_stream(source: DomainSource, image_size: int, seed: int, start_sample: int) -> tf.data.Dataset:
    reader = _slice_reader(source)

    def load(position, index):
        return augment_sample(reader(index), image_size, seed, position)

    return shuffled_positions(source.count, seed, start_sample).map(load, num_parallel_calls=tf.data.AUTOTUNE,
                                                                    deterministic=True)


def train_dataset(path, image_size: int, batch_size: int, seed: int = 0, start_step: int = 0,
                  memory_limit_bytes: int = DEFAULT_MEMORY_LIMIT) -> tf.data.Dataset:
    """Endless unpaired batches ``(a, b)``, each (batch, S, S, 1) float32 in [-1, 1], starting at ``start_step``."""
    path = os.fspath(path)
    streams = []
    for offset, domain in enumerate(("A", "B")):
        source = _domain_source(path, "train", domain, memory_limit_bytes)
        stream = _domain_stream(source, image_size, seed * 2 + offset, start_step * batch_size)
        streams.append(stream.batch(batch_size, drop_remainder=True))
    return tf.data.Dataset.zip(tuple(streams)).prefetch(tf.data.AUTOTUNE)


def val_arrays(path, image_size: int | None = None, max_slices: int | None = None):
    """Paired validation set as NumPy: ``(a, b, subjects)`` with a, b (M, S, S, 1) in [-1, 1]."""
    with open_store(path, validate=False) as store:
        m = len(store.val_images("A")) if max_slices is None else min(max_slices, len(store.val_images("A")))
        a = to_model_range(store.val_images("A")[:m], store.window_a)
        b = to_model_range(store.val_images("B")[:m], store.window_b)
        subjects = store.val_subjects()[:m]
    if image_size is not None and image_size != a.shape[1]:
        a = _resize_batch(a, image_size)
        b = _resize_batch(b, image_size)
    return a[..., None], b[..., None], subjects


def _resize_batch(images: np.ndarray, size: int) -> np.ndarray:
    method = "area" if images.shape[1] > size else "bilinear"
    out = tf.image.resize(images[..., None], (size, size), method=method, antialias=True)
    return np.clip(out.numpy()[..., 0], -1.0, 1.0)


def val_dataset(path, image_size: int, batch_size: int, max_slices: int | None = None) -> tf.data.Dataset:
    """Paired validation batches ``(a, b)`` in store order (no augmentation)."""
    a, b, _ = val_arrays(path, image_size, max_slices)
    return tf.data.Dataset.from_tensor_slices((a, b)).batch(batch_size).prefetch(tf.data.AUTOTUNE)
