"""Learning-rate schedules, chosen by name (``TrainConfig.lr_schedule``, one of ``config.LR_SCHEDULES``):
``linear_decay``, constant and then linear decay to ~0 (xhujoy's schedule, applied per step), and ``constant``
(taki0112's UNIT)."""

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


@keras.saving.register_keras_serializable(package="cycle_medgan_tf")
class Constant(keras.optimizers.schedules.LearningRateSchedule):
    """``lr`` at every step."""

    def __init__(self, lr: float):
        self.lr = float(lr)

    def __call__(self, step):
        return tf.constant(self.lr, tf.float32)

    def get_config(self):
        return {"lr": self.lr}


def make_schedule(name: str, lr: float, total_steps: int, decay_start: float):
    """The schedule ``name`` over ``total_steps`` (``decay_start``: the fraction of them before linear_decay
    starts)."""
    if name == "constant":
        return Constant(lr)
    if name == "linear_decay":
        return ConstantThenLinearDecay(lr, total_steps, int(round(decay_start * total_steps)))
    raise ValueError(f"unknown lr_schedule {name!r}")
