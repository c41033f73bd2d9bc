"""FusedAdam: Keras Adam's update, state and checkpoint layout, in one kernel per variable."""

import keras
import numpy as np
import tensorflow as tf

from cycle_medgan_tf.training.optim import FusedAdam


def _train(optimizer_class, init, gradients):
    variables = [tf.Variable(x) for x in init]
    optimizer = optimizer_class(learning_rate=2e-4, beta_1=0.5, beta_2=0.999)
    optimizer.build(variables)

    @tf.function
    def step(grads):
        optimizer.apply_gradients(zip(grads, variables))

    for grads in gradients:
        step(grads)
    return variables, optimizer


def test_fused_adam_equals_keras_adam():
    rng = np.random.default_rng(0)
    shapes = [(3, 3, 8, 16), (16,), (7, 7, 1, 4)]
    init = [rng.normal(size=s).astype("float32") for s in shapes]
    gradients = [[tf.constant(rng.normal(size=s).astype("float32")) for s in shapes] for _ in range(6)]
    keras_vars, keras_opt = _train(keras.optimizers.Adam, init, gradients)
    fused_vars, fused_opt = _train(FusedAdam, init, gradients)
    for a, b, start in zip(keras_vars, fused_vars, init):
        assert not np.allclose(b.numpy(), start)          # it did train
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=0, atol=1e-6)
    assert [v.path.split("/", 1)[1] for v in fused_opt.variables] == [v.path.split("/", 1)[1]
                                                                       for v in keras_opt.variables]
    for a, b in zip(keras_opt.variables, fused_opt.variables):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-5, atol=1e-7)


def test_fused_adam_checkpoint_restores_into_keras_adam(tmp_path):
    rng = np.random.default_rng(1)
    init = [rng.normal(size=(4, 4)).astype("float32")]
    gradients = [[tf.constant(rng.normal(size=(4, 4)).astype("float32"))] for _ in range(3)]
    fused_vars, fused_opt = _train(FusedAdam, init, gradients)
    path = tf.train.Checkpoint(v=fused_vars[0], opt=fused_opt).save(str(tmp_path / "ckpt"))
    fresh = [tf.Variable(np.zeros((4, 4), "float32"))]
    opt = keras.optimizers.Adam(learning_rate=2e-4, beta_1=0.5)
    opt.build(fresh)
    tf.train.Checkpoint(v=fresh[0], opt=opt).restore(path).assert_existing_objects_matched()
    np.testing.assert_array_equal(fresh[0].numpy(), fused_vars[0].numpy())
    assert int(opt.iterations.numpy()) == 3
