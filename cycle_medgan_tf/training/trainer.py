"""The shared training skeleton: every model is a trainer that builds its networks and optimisers and defines one
train step, under one of two contracts: a :class:`TranslatorTrainer` (Cycle-MedGAN, CycleGAN, UNIT; exports one
inference model per direction) or a :class:`RepresentationTrainer` (BiGAN; exports learned weights). This module
runs it.

``run_training`` is a short loop over the hooks of training/hooks.py, in a run directory (training/rundir.py):
``config.json`` (every effective setting), ``checkpoints/`` (models, optimisers, step and history pools via
``tf.train.CheckpointManager``; all randomness is stateless and keyed by (seed, step), so the step is the whole RNG
state), ``metrics.jsonl`` (losses; with ``curve_data`` also the learning-curve records of ``training/curves.py``, with
``gradient_every`` the per-term gradient norms of ``hooks.GradientNorms``),
TensorBoard logs in ``tb/``, image grids in ``samples/`` and what the model exports (``export/``, or the
feature extractor of a BiGAN).

Faults: a resume restores the newest *readable* checkpoint (see rundir.py); a non-finite loss stops the run
(:class:`TrainingError`) or, with ``skip_nonfinite``, the step is undone from an in-memory copy of every
checkpointed variable taken before it, and training goes on with the next batch (see hooks.py).
"""

from __future__ import annotations

import dataclasses
import math
import os

import keras
import numpy as np
import tensorflow as tf

from cycle_medgan_tf.config import PAPER_EPOCH_SLICES, TrainConfig
from cycle_medgan_tf.data import pipeline
from cycle_medgan_tf.data.store import StoreInfo, check_store
from cycle_medgan_tf.training import hooks
from cycle_medgan_tf.training.curves import learning_curves
from cycle_medgan_tf.training.distribute import Distribution, make_strategy
from cycle_medgan_tf.training.optim import FusedAdam
from cycle_medgan_tf.training.precision import previous_config, resolve_precision
from cycle_medgan_tf.training.progress import format_duration
from cycle_medgan_tf.training.rundir import (RUN_CONTROL_FIELDS, RunDirectory, TrainingError,  # noqa: F401
                                             in_scratch, prepare_workdir)
from cycle_medgan_tf.training.schedule import make_schedule

DataInfo = StoreInfo        # what a trainer knows about its store: the checked store's summary

def epoch_slices(cfg: TrainConfig, info: DataInfo) -> int:
    """Slices per epoch: min(Na, Nb) of the store (as xhujoy), or the paper's cohort for the store's task
    (``epoch_basis="paper"``; PET-CT's for tasks the paper did not have)."""
    if cfg.epoch_basis == "paper":
        return PAPER_EPOCH_SLICES.get(info.task, PAPER_EPOCH_SLICES["pet_ct"])
    return min(info.n_train_a, info.n_train_b)


def total_steps(cfg: TrainConfig, info: DataInfo) -> int:
    """``cfg.steps`` if set, else ``epochs`` x batches per epoch (:func:`epoch_slices` // batch)."""
    if cfg.steps > 0:
        return int(cfg.steps)
    per_epoch = max(epoch_slices(cfg, info) // cfg.batch_size, 1)
    return int(math.ceil(cfg.epochs * per_epoch))


def describe_steps(cfg: TrainConfig, info: DataInfo) -> str:
    """How the step count was derived, for the start-of-run log line."""
    if cfg.steps > 0:
        return f"{cfg.steps} steps"
    basis = ("the paper's cohort" if cfg.epoch_basis == "paper" else "this store")
    return (f"{cfg.epochs:g} epochs of {epoch_slices(cfg, info)} slices ({basis}) at batch {cfg.batch_size} = "
            f"{total_steps(cfg, info)} steps")


class BaseTrainer:
    """What every model shares: the step variable, the learning-rate schedule, optimisers, precision, seeds and
    snapshots. A model implements :meth:`build`, :meth:`train_step`, :meth:`trackables`, :meth:`sample_grid` and
    :meth:`export` through one of the two contracts below: :class:`TranslatorTrainer` or
    :class:`RepresentationTrainer`."""

    def __init__(self, cfg: TrainConfig, info: DataInfo, dist: Distribution | None = None):
        self.dist = dist or Distribution()
        if cfg.precision == "auto":         # built outside run_training (benches, scripts): measure here
            cfg = resolve_precision(cfg, dist=self.dist)[0]
        self.cfg, self.info = cfg, info
        self.dist.check(cfg.batch_size, bool(cfg.jit))
        self.total_steps = total_steps(cfg, info)
        self.schedule = make_schedule(cfg.lr_schedule, cfg.lr, self.total_steps, cfg.decay_start)
        keras.mixed_precision.set_global_policy(cfg.precision)
        keras.utils.set_random_seed(cfg.seed)
        with self.dist.scope():
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            self.build()
        self.run_step = self.dist.compile_step(self.train_step, jit=bool(cfg.jit))

    # ---- to implement -------------------------------------------------------------------------------------
    def build(self) -> None:
        raise NotImplementedError

    def train_step(self, a: tf.Tensor, b: tf.Tensor, step: tf.Tensor) -> dict:
        """One optimisation step on unpaired batches ``a``, ``b`` (this replica's slice of the global batch under
        a strategy); returns float32 scalar losses (means over ``a``, ``b``)."""
        raise NotImplementedError

    def trackables(self) -> dict:
        """Objects saved in checkpoints (models, optimisers, pools)."""
        raise NotImplementedError

    def sample_grid(self, a: tf.Tensor, b: tf.Tensor) -> np.ndarray:
        """An image grid (H, W) in [-1, 1] of the first samples of ``a``, ``b`` for ``samples/`` and TensorBoard."""
        raise NotImplementedError

    def export(self, workdir: str) -> str:
        """Write what the run is for into ``workdir`` at the end of training; returns its path."""
        raise NotImplementedError

    # ---- helpers for subclasses ---------------------------------------------------------------------------
    def make_optimizer(self, variables) -> keras.optimizers.Optimizer:
        """Adam (one fused kernel per variable, see optim.py) with the configured betas and the constant-then-linear-
        decay schedule, built for ``variables``."""
        optimizer = FusedAdam(learning_rate=self.schedule, beta_1=self.cfg.beta1, beta_2=self.cfg.beta2)
        if self.cfg.precision == "mixed_float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        optimizer.build(variables)
        return optimizer

    def apply(self, optimizer, tape, loss, variables) -> None:
        """Gradients of ``loss`` applied to ``variables``. The loss is divided by the replica count under a strategy
        (the optimiser sums the replicas' gradients) and loss-scaled under float16, on ``tape`` (re-entered, so
        that these operations are recorded)."""
        with tape:
            loss = self.dist.scale_loss(loss)
            scaled = optimizer.scale_loss(loss) if hasattr(optimizer, "scale_loss") else loss
        grads = tape.gradient(scaled, variables)
        optimizer.apply_gradients(zip(grads, variables))

    def step_seed(self, step: tf.Tensor, salt: int) -> tf.Tensor:
        """Stateless seed for the random draws of ``step`` (``salt`` separates uses within a step)."""
        return tf.stack([tf.cast(self.cfg.seed * 1_000_003 + salt, tf.int64), tf.cast(step, tf.int64)])

    def learning_rate(self) -> float:
        """The learning rate the most recent step used."""
        return float(self.schedule(max(int(self.step.numpy()) - 1, 0)))

    def run_pixel_spacing_mm(self) -> float:
        """Pixel spacing of the images the networks see (the store's, resized to ``image_size``)."""
        return self.info.pixel_spacing_mm * self.info.store_size / self.cfg.image_size

    def state_variables(self) -> list:
        """Every variable the checkpoint holds (models, optimisers, pools), each once."""
        seen, out = set(), []
        for obj in self.trackables().values():
            for v in [obj] if isinstance(obj, tf.Variable) else getattr(obj, "variables", []):
                if id(v) not in seen:
                    seen.add(id(v))
                    out.append(v)
        return out

    def snapshot(self) -> list:
        """The current values of :meth:`state_variables` (cheap: TensorFlow copies a buffer only when a step
        later writes to it)."""
        return [tf.identity(v) for v in self.state_variables()]

    def restore_snapshot(self, values: list) -> None:
        for v, value in zip(self.state_variables(), values):
            v.assign(value)


class TranslatorTrainer(BaseTrainer):
    """A translator between domains A and B (Cycle-MedGAN, CycleGAN, UNIT): :meth:`export_models` gives its
    inference model per direction, which learning curves score and :meth:`export` writes to ``export/``."""

    def export_models(self) -> dict:
        """``{"a2b": keras.Model, "b2a": keras.Model}`` for inference export."""
        raise NotImplementedError

    def sample_grid(self, a: tf.Tensor, b: tf.Tensor) -> np.ndarray:
        """An image grid (H, W) in [-1, 1] for TensorBoard: rows A->B->A and B->A->B of the first sample."""
        models = self.export_models()
        fake_b = models["a2b"](a[:1], training=False)
        fake_a = models["b2a"](b[:1], training=False)
        rec_a = models["b2a"](fake_b, training=False)
        rec_b = models["a2b"](fake_a, training=False)
        row_a = tf.concat([a[:1], fake_b, rec_a], axis=2)
        row_b = tf.concat([b[:1], fake_a, rec_b], axis=2)
        return tf.concat([row_a, row_b], axis=1)[0, ..., 0].numpy()

    def manifest(self) -> dict:
        from cycle_medgan_tf.data.window import manifest_entries

        return dict(model=self.cfg.model, task=self.info.task, domain_a=self.info.domain_a,
                    domain_b=self.info.domain_b, **manifest_entries("a", self.info.window_a),
                    **manifest_entries("b", self.info.window_b), image_size=self.cfg.image_size,
                    channels=self.cfg.channels,
                    pixel_spacing_mm=self.run_pixel_spacing_mm(),
                    trained_steps=int(self.step.numpy()), normalisation_a=dict(self.info.normalisation_a),
                    normalisation_b=dict(self.info.normalisation_b))

    def export(self, workdir: str) -> str:
        from cycle_medgan_tf.export import export_translators
        return export_translators(workdir, self.export_models(), self.manifest())


Trainer = TranslatorTrainer     # the name the translators subclass


class RepresentationTrainer(BaseTrainer):
    """A representation learner (BiGAN): it translates nothing (no ``export/`` models, no learning curves); its
    :meth:`export` writes the learned weights another run uses, and it draws its own :meth:`sample_grid`."""


# ---- the run loop ---------------------------------------------------------------------------------------------

def _resolve(cfg: TrainConfig, data: StoreInfo | None, dist: Distribution | None, log) -> tuple:
    """The config with absolute paths and its precision resolved, the checked store (``data``, or checked here)
    and the distribution."""
    cfg = dataclasses.replace(cfg, workdir=os.path.abspath(cfg.workdir), data=os.path.abspath(cfg.data),
                              curve_data=os.path.abspath(cfg.curve_data) if cfg.curve_data else "")
    info = data if data is not None else check_store(cfg.data)
    if dist is None:
        dist = Distribution(make_strategy(cfg.strategy, cfg.cpu_devices))
    cfg, message = resolve_precision(cfg, previous_config(cfg.workdir), RUN_CONTROL_FIELDS, dist)  # resumes keep theirs
    if cfg.precision_probe:
        log(f"[{cfg.model}] {message}")
    return cfg, info, dist


def _step_hooks(trainer, cfg: TrainConfig, run: RunDirectory, curves, metrics, writer) -> list:
    """The per-step hooks in the order they act: progress, metrics, curve point, gradient norms, image grid,
    checkpoint."""
    chief = trainer.dist.is_chief
    return ([hooks.ConsoleProgress(trainer.total_steps, run.start, f"[{cfg.model}]"), metrics]
            + ([hooks.CurvePoints(curves, trainer.export_models, metrics)] if curves is not None else [])
            + ([hooks.GradientNorms(trainer.gradient_norms, cfg.gradient_every, trainer.dist.local_batch, metrics)]
               if cfg.gradient_every and chief else [])
            + ([hooks.ImageGrids(cfg.workdir, cfg.image_every, trainer.sample_grid, trainer.dist.local_batch,
                                 writer)] if chief else [])
            + [hooks.Checkpoints(run.save, cfg.checkpoint_every)])


def _train(trainer, cfg: TrainConfig, info: StoreInfo, run: RunDirectory, curves, writer, max_new_steps, log,
           summary: dict) -> dict:
    """Steps ``run.start`` -> ``total_steps``; the run's summary, or where it ended early (paused, interrupted)."""
    start, total, dist = run.start, trainer.total_steps, trainer.dist
    log(f"[{cfg.model}] training {info.task} {info.domain_a}<->{info.domain_b} at {cfg.image_size}x{cfg.image_size}, "
        f"batch {cfg.batch_size}, steps {start}->{total} (profile {cfg.profile}: {describe_steps(cfg, info)})"
        + (f" under {dist}" if dist.strategy is not None else "") + (f"; {curves.describe()}" if curves else ""))
    data = dist.distribute_dataset(lambda: pipeline.train_dataset(cfg.data, cfg.image_size, cfg.batch_size,
                                                                  seed=cfg.seed, start_step=start), cfg.batch_size)
    guard = hooks.NonFiniteGuard(trainer, cfg.skip_nonfinite, lambda: run.last_good, log, f"[{cfg.model}]")
    metrics = hooks.MetricsLog(run.metrics_path if dist.is_chief else os.devnull, writer, cfg.log_every,
                               trainer.learning_rate, lambda: guard.skipped)
    after_step = _step_hooks(trainer, cfg, run, curves, metrics, writer)
    step, early = start, None
    with hooks.StopControl(start, max_new_steps, dist.any_worker) as stop:
        try:
            for a, b in data:
                if step >= total:
                    break
                losses = guard.run(step, a, b)
                step += 1
                trainer.step.assign(step)
                for hook in after_step:
                    hook.after_step(hooks.StepDone(step, total, a, b, losses))
                early = stop.check(step, total)
                if early:
                    run.save(step)
                    break
        finally:
            after_step[0].close()
            writer.flush()
            metrics.close()
    if early:
        log(f"[{cfg.model}] {early.pop('message')}")
        return dict(summary, step=step, **early)
    seconds = round(metrics.seconds(), 2)
    log(f"[{cfg.model}] trained {step - start} steps in {format_duration(seconds)}"
        + (f" ({guard.skipped} skipped for non-finite losses)" if guard.skipped else ""))
    return dict(summary, train_seconds=seconds, skipped_steps=guard.skipped)


def export_run(trainer, workdir: str) -> str | None:
    """``trainer.export(workdir)`` on the chief; the other workers export as the chief does (saving may run
    collectives), into scratch that is then discarded, and return ``None``."""
    if trainer.dist.is_chief:
        return trainer.export(workdir)
    in_scratch(trainer.dist, trainer.export)
    return None


def run_training(trainer_cls, cfg: TrainConfig, overwrite: bool = False, log=print,
                 max_new_steps: int | None = None, dist: Distribution | None = None,
                 data: StoreInfo | None = None) -> dict:
    """Train (or resume) ``cfg`` to its step budget, then export. Returns a summary dict with ``status`` one of
    ``completed``, ``paused`` (``max_new_steps`` reached; checkpoint saved) or ``interrupted`` (by a signal,
    named in ``signal``; checkpoint saved).

    ``data`` is the training store as the entry point checked it (``data.store.check_store``); without it the
    store is checked here. ``dist`` is the distribution to train under; by default it is made from ``cfg.strategy``
    here (``train_cli`` makes it first thing in the process instead, as MultiWorkerMirroredStrategy requires). In a
    multi-worker run every worker calls this; only the chief writes the work directory."""
    cfg, info, dist = _resolve(cfg, data, dist, log)
    curves = learning_curves(cfg, total_steps(cfg, info), dist.is_chief)   # refuses a leaking tuning store
    trainer = trainer_cls(cfg, info, dist)  # first, so a bad extractor or model setting leaves no run directory
    if cfg.curve_data and not isinstance(trainer, TranslatorTrainer):
        raise TrainingError(f"--curve_data: learning curves score translators; {cfg.model} does not translate")
    if cfg.gradient_every and not callable(getattr(trainer, "gradient_norms", None)):
        raise TrainingError(f"--gradient_every: {cfg.model} does not report per-term gradient norms (CycleGAN and "
                            "Cycle-MedGAN do)")
    run = RunDirectory(cfg, tf.train.Checkpoint(step=trainer.step, **trainer.trackables()), trainer.step, dist,
                       overwrite, log)
    if run.last_good:
        log(f"[{cfg.model}] resuming from step {run.start} ({run.last_good})")
    writer = (tf.summary.create_file_writer(os.path.join(cfg.workdir, "tb")) if dist.is_chief
              else tf.summary.create_noop_writer())
    summary = dict(model=cfg.model, workdir=cfg.workdir, total_steps=trainer.total_steps, start_step=run.start)
    if run.start < trainer.total_steps:
        summary = _train(trainer, cfg, info, run, curves, writer, max_new_steps, log, summary)
        if "status" in summary:         # paused or interrupted
            return summary
    writer.flush()
    run.save(int(trainer.step.numpy()))
    return dict(summary, export=export_run(trainer, cfg.workdir), status="completed", step=int(trainer.step.numpy()))
