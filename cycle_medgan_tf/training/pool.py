"""The discriminator's history of generated images (Shrivastava et al. 2017; 50 images in CycleGAN).

Kept in TensorFlow variables so it is saved in checkpoints, and driven by stateless random draws seeded by the
training step, so a resumed run makes the same choices as an uninterrupted one. Under ``tf.distribute`` the query
runs once per step on the gathered global batch, in cross-replica context (see ``training/distribute.py``); its
variable updates (``scatter_update``, ``assign_add``) are ones mirrored variables support there.
"""

from __future__ import annotations

import tensorflow as tf


class HistoryPool(tf.Module):
    """Per image: while the pool is filling, store it and pass it on; afterwards, with probability 1/2 return a
    random stored image and store the new one in its place, otherwise pass the new one on."""

    def __init__(self, size: int, image_shape, name: str = "history_pool"):
        super().__init__(name=name)
        self.size = int(size)
        self.images = tf.Variable(tf.zeros((max(self.size, 1),) + tuple(image_shape), tf.float32),
                                  trainable=False, name="images")
        self.count = tf.Variable(0, dtype=tf.int32, trainable=False, name="count")

    def _store(self, slot, image) -> None:
        self.images.scatter_update(tf.IndexedSlices(image[None], slot[None]))

    def query(self, fakes: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """Return the images the discriminator should see for this batch of ``fakes``."""
        fakes = tf.cast(fakes, tf.float32)
        if self.size == 0:
            return fakes
        n = tf.shape(fakes)[0]
        coins = tf.random.stateless_uniform([n], seed=seed)
        slots = tf.random.stateless_uniform([n], seed=seed + 1, maxval=self.size, dtype=tf.int32)
        outputs = tf.TensorArray(tf.float32, size=n, element_shape=fakes.shape[1:])
        # tf.gather rather than indexing: XLA compiles a gather with a run-time index once, but needs slice
        # bounds as compile-time constants (indexing made --jit recompile the step every step).
        for i in tf.range(n):
            image, coin, slot = tf.gather(fakes, i), tf.gather(coins, i), tf.gather(slots, i)
            if self.count < self.size:
                self._store(self.count, image)
                self.count.assign_add(1)
                out = image
            elif coin > 0.5:
                out = tf.identity(tf.gather(self.images, slot))
                self._store(slot, image)
            else:
                out = image
            outputs = outputs.write(i, out)
        return outputs.stack()
