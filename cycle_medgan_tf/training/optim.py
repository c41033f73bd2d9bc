"""Adam with one fused kernel per variable.

Keras 3's Adam updates each variable with about ten separate element-wise operations (m, v, the step, each a pass
over memory and an op dispatch). TensorFlow's ``ResourceApplyAdam`` kernel computes the same update in one pass:
per variable ``alpha = lr * sqrt(1 - beta2^t) / (1 - beta1^t)``, ``m += (g - m) * (1 - beta1)``,
``v += (g^2 - v) * (1 - beta2)``, ``var -= m * alpha / (sqrt(v) + epsilon)`` -- Keras's formula term for term, so
the optimiser state (``m``, ``v``, ``iterations``) and checkpoints are those of ``keras.optimizers.Adam``.
"""

from __future__ import annotations

import keras
import tensorflow as tf


class FusedAdam(keras.optimizers.Adam):
    """``keras.optimizers.Adam`` (no AMSGrad, no weight decay) whose per-variable update is one fused kernel;
    float32 variables only (others take Keras's path). Named "adam" like the optimiser it replaces."""

    def __init__(self, *args, name: str = "adam", **kwargs):
        super().__init__(*args, name=name, **kwargs)

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad or variable.dtype != tf.float32 or isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        step = tf.cast(self.iterations + 1, tf.float32)
        beta_1, beta_2 = tf.constant(self.beta_1, tf.float32), tf.constant(self.beta_2, tf.float32)
        # ``handle`` of a variable mirrored by tf.distribute is the component being updated on this device.
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=m.value.handle, v=v.value.handle,
            beta1_power=tf.pow(beta_1, step), beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(learning_rate, tf.float32), beta1=beta_1, beta2=beta_2,
            epsilon=tf.constant(self.epsilon, tf.float32), grad=tf.cast(gradient, tf.float32), use_locking=False)
