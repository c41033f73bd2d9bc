"""Learning-rate schedule: constant, then linear decay to ~0 (xhujoy's schedule, applied per step)."""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="cycle_medgan_tf")
class ConstantThenLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """``lr`` for steps < ``decay_start_step``, then ``lr * (total - step) / (total - decay_start_step)``."""

    def __init__(self, lr: float, total_steps: int, decay_start_step: int):
        self.lr = float(lr)
        self.total_steps = int(total_steps)
        self.decay_start_step = int(min(decay_start_step, total_steps))

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        span = float(max(self.total_steps - self.decay_start_step, 1))
        fraction = tf.clip_by_value((float(self.total_steps) - step) / span, 0.0, 1.0)
        return tf.where(step < float(self.decay_start_step), self.lr, self.lr * fraction)

    def get_config(self):
        return {"lr": self.lr, "total_steps": self.total_steps, "decay_start_step": self.decay_start_step}
