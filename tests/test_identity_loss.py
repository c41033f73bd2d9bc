"""The optional identity-mapping loss of the cycle trainer (``--lambda_identity``; Zhu et al. 2017): the value it
claims when on, gradients into both generators (off in both faithful models, old records: tests/test_catalogue.py)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from cycle_medgan_tf.config import resolve_config
from cycle_medgan_tf.training.cycle import CycleTrainer
from tests.conftest import synthetic_info

INFO = synthetic_info()


def test_identity_loss_is_each_generator_on_its_own_domain_and_trains_both():
    trainer = CycleTrainer(resolve_config("cyclegan", "smoke", dict(image_size=32, lambda_identity=5.0)), INFO)
    a = tf.random.stateless_uniform((1, 32, 32, 1), [1, 2], -1.0, 1.0)
    b = tf.random.stateless_uniform((1, 32, 32, 1), [2, 3], -1.0, 1.0)
    with tf.GradientTape(persistent=True) as tape:
        out, _, _ = trainer.generator_losses(a, b)
    want = (np.mean(np.abs(trainer.g_ab(b, training=True).numpy() - b.numpy()))
            + np.mean(np.abs(trainer.g_ba(a, training=True).numpy() - a.numpy())))
    np.testing.assert_allclose(out["identity"].numpy(), want, rtol=1e-5)
    without = out["g_adv_a2b"] + out["g_adv_b2a"] + 10.0 * out["cycle"]
    np.testing.assert_allclose(out["g_total"].numpy(), (without + 5.0 * out["identity"]).numpy(), rtol=1e-5)
    for generator in (trainer.g_ab, trainer.g_ba):
        grads = tape.gradient(out["identity"], generator.trainable_variables)
        assert all(g is not None and np.any(g.numpy()) for g in grads), generator.name
    del tape
