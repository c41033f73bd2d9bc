"""The shared training skeleton: every model (CycleGAN, Cycle-MedGAN, UNIT, BiGAN) is a :class:`Trainer`
subclass that builds its networks and optimisers and defines one train step; this module runs it.

``run_training`` owns the work directory: ``config.json`` (every effective setting), ``checkpoints/``
(models, optimisers, step and history pools via ``tf.train.CheckpointManager``; all randomness is stateless and
keyed by (seed, step), so the step is the whole RNG state), ``metrics.jsonl`` (losses; with ``curve_data`` also
the learning-curve records of ``training/curves.py``), TensorBoard logs in ``tb/``,
image grids in ``samples/`` and the exported inference models in ``export/``.

Faults: a resume restores the newest *readable* checkpoint (an unreadable one, e.g. from a disk fault or a kill
while it was written, is named in a warning and the previous one is used); a non-finite loss stops the run
(:class:`TrainingError`) or, with ``skip_nonfinite``, the step is undone from an in-memory copy of every
checkpointed variable taken before it, and training goes on with the next batch.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import math
import os
import shutil
import signal
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from cycle_medgan_tf.atomic import atomic_write_text
from cycle_medgan_tf.config import PAPER_EPOCH_SLICES, TrainConfig, current_layout
from cycle_medgan_tf.data import pipeline
from cycle_medgan_tf.data.store import open_store
from cycle_medgan_tf.training.curves import learning_curves
from cycle_medgan_tf.training.distribute import Distribution, make_strategy
from cycle_medgan_tf.training.optim import FusedAdam
from cycle_medgan_tf.training.precision import previous_config, resolve_precision
from cycle_medgan_tf.training.progress import Progress, format_duration
from cycle_medgan_tf.training.schedule import make_schedule


class TrainingError(Exception):
    """A user-facing training failure (bad work directory, non-finite loss, ...)."""


@dataclasses.dataclass(frozen=True)
class DataInfo:
    """What a trainer needs to know about its data store."""

    path: str
    task: str
    domain_a: str
    domain_b: str
    window_a: tuple
    window_b: tuple
    pixel_spacing_mm: float
    store_size: int
    n_train_a: int
    n_train_b: int
    normalisation_a: dict = dataclasses.field(default_factory=dict)     # {} (old stores): "none"
    normalisation_b: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def from_store(cls, path: str) -> "DataInfo":
        with open_store(path) as store:
            return cls(path=os.path.abspath(path), task=store.task, domain_a=store.domain_a,
                       domain_b=store.domain_b, window_a=store.window_a, window_b=store.window_b,
                       pixel_spacing_mm=store.pixel_spacing_mm, store_size=store.image_size,
                       n_train_a=len(store.train_images("A")), n_train_b=len(store.train_images("B")),
                       normalisation_a=store.normalisation("A"), normalisation_b=store.normalisation("B"))


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


class Trainer:
    """Base class. Subclasses implement :meth:`build`, :meth:`train_step`, :meth:`trackables` and
    :meth:`export_models`; they may override :meth:`sample_grid`."""

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

    # ---- helpers for subclasses ---------------------------------------------------------------------------
    def make_optimizer(self, variables) -> keras.optimizers.Optimizer:
        """Adam (one fused kernel per variable, see optim.py) with the configured betas and learning-rate schedule,
        built for ``variables``."""
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

    def manifest(self) -> dict:
        return dict(model=self.cfg.model, task=self.info.task, domain_a=self.info.domain_a,
                    domain_b=self.info.domain_b, window_a=list(self.info.window_a), window_b=list(self.info.window_b),
                    image_size=self.cfg.image_size, channels=self.cfg.channels,
                    pixel_spacing_mm=self.run_pixel_spacing_mm(),
                    trained_steps=int(self.step.numpy()), normalisation_a=dict(self.info.normalisation_a),
                    normalisation_b=dict(self.info.normalisation_b))

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

    def export(self, workdir: str) -> str:
        from cycle_medgan_tf.export import export_translators
        return export_translators(workdir, self.export_models(), self.manifest())


# ---- the run loop ---------------------------------------------------------------------------------------------

# may change between a run and its resume (precision_probe: the record of how precision=auto chose, see precision.py)
RUN_CONTROL_FIELDS = ("skip_nonfinite", "strategy", "cpu_devices", "precision_probe")
MAX_CONSECUTIVE_SKIPS = 20                  # with skip_nonfinite: more in a row means divergence; stop


def _drop_metrics_after(path: str, step: int) -> None:
    """On resume, remove ``metrics.jsonl`` lines logged after the restored step (a killed run logged them, and the
    resumed run will log those steps again)."""
    if not os.path.isfile(path):
        return
    with open(path) as f:
        lines = f.readlines()
    kept = []
    for line in lines:
        try:
            if json.loads(line)["step"] <= step:
                kept.append(line)
        except (ValueError, KeyError, TypeError):
            continue            # a line cut short by a kill
    if len(kept) != len(lines):
        atomic_write_text(path, "".join(kept))


def prepare_workdir(cfg: TrainConfig, overwrite: bool) -> None:
    """Create the work directory, or accept it for resuming when its config matches (``RUN_CONTROL_FIELDS``
    aside); refuse otherwise."""
    path = os.path.join(cfg.workdir, "config.json")
    if os.path.exists(path):
        try:
            with open(path) as f:
                previous = current_layout(json.load(f))
        except (OSError, ValueError):
            previous = None
        current = json.loads(cfg.to_json())
        if isinstance(previous, dict):
            previous = {k: v for k, v in previous.items() if k not in RUN_CONTROL_FIELDS}
        current = {k: v for k, v in current.items() if k not in RUN_CONTROL_FIELDS}
        if previous != current:
            if not overwrite:
                changed = sorted(k for k in set(current) | set(previous or {})
                                 if (previous or {}).get(k) != current.get(k))
                raise TrainingError(f"{cfg.workdir} holds a run with a different configuration "
                                    f"(differs in: {', '.join(changed) or 'unreadable config.json'}); "
                                    "use another --workdir or --overwrite to start afresh")
            shutil.rmtree(cfg.workdir)
    elif os.path.isdir(cfg.workdir) and os.listdir(cfg.workdir) and not overwrite:
        raise TrainingError(f"{cfg.workdir} exists, is not empty and holds no run; use another --workdir or --overwrite")
    elif os.path.isdir(cfg.workdir) and overwrite:
        shutil.rmtree(cfg.workdir)
    os.makedirs(cfg.workdir, exist_ok=True)
    atomic_write_text(path, cfg.to_json())


class _StopRequest:
    """Turns SIGINT/SIGTERM into a flag checked between steps."""

    def __init__(self):
        self.signum = None
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not in the main thread
                pass
        return self

    def _handle(self, signum, frame):
        self.signum = signum

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _checkpoint_number(prefix: str) -> int:
    try:
        return int(prefix.rsplit("-", 1)[-1])
    except ValueError:
        return -1


def _checkpoint_manager(checkpoint, directory: str, keep: int, log) -> tf.train.CheckpointManager:
    """A CheckpointManager; an unreadable ``checkpoint`` state file is set aside (renamed ``checkpoint.unreadable``)
    so that the checkpoints themselves are still found by :func:`_restore_newest`."""
    state = os.path.join(directory, "checkpoint")
    try:
        return tf.train.CheckpointManager(checkpoint, directory, max_to_keep=keep)
    except Exception as exc:  # a damaged state file raises UnicodeDecodeError, OpError, ...
        if not os.path.isfile(state):
            raise TrainingError(f"cannot use checkpoint directory {directory}: {type(exc).__name__}: "
                                f"{' '.join(str(exc).split())}") from exc
        os.replace(state, state + ".unreadable")
        log(f"warning: {state} is unreadable ({type(exc).__name__}); moved to {state}.unreadable")
        return tf.train.CheckpointManager(checkpoint, directory, max_to_keep=keep)


def _restore_newest(checkpoint, directory: str, listed, log) -> str | None:
    """Restore the newest readable checkpoint in ``directory``: those ``listed`` (by its manager's state file) plus
    any ``ckpt-N.index`` on disk (the state file may be stale or damaged), newest first. Returns its path, ``None``
    when there is none; raises :class:`TrainingError` if there are checkpoints but none can be restored (nothing is
    deleted)."""
    found = {p[:-len(".index")] for p in glob.glob(os.path.join(glob.escape(directory), "ckpt-*.index"))}
    candidates = sorted(set(listed) | found, key=_checkpoint_number, reverse=True)
    failures = []
    for path in candidates:
        try:
            checkpoint.restore(path).assert_existing_objects_matched()
        except Exception as exc:  # TensorFlow raises OpError, IndexError, AssertionError, ... for a bad file
            message = (str(exc).strip().splitlines() or [""])[0][:200]
            failures.append(f"{os.path.basename(path)} ({type(exc).__name__}: {message})")
            continue
        if failures:
            log(f"warning: skipped unreadable checkpoint(s) {'; '.join(failures)}; using {path}")
        return path
    if failures:
        raise TrainingError(f"no checkpoint in {directory} can be restored: {'; '.join(failures)}; "
                            "repair or remove them, or use --overwrite to start afresh")
    return None


def _write_grid(workdir: str, step: int, grid: np.ndarray, writer) -> None:
    image = np.clip((grid + 1.0) * 127.5, 0, 255).astype(np.uint8)
    os.makedirs(os.path.join(workdir, "samples"), exist_ok=True)
    tf.io.write_file(os.path.join(workdir, "samples", f"step_{step:07d}.png"), tf.io.encode_png(image[..., None]))
    with writer.as_default(step=step):
        tf.summary.image("samples/A-B-A_and_B-A-B", image[None, ..., None])


def _in_scratch(dist: Distribution, fn):
    """``fn(directory)`` in a fresh scratch directory that is removed afterwards: where the non-chief workers of a
    multi-worker run save and export (all workers must, as saving may run collectives), off the chief's files."""
    scratch = tempfile.mkdtemp(prefix=f"cycle-medgan-{dist.task.replace(':', '')}-")
    try:
        return fn(scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _agree(dist: Distribution, problem: Exception | None, elsewhere: str) -> None:
    """Raise ``problem``, or ``TrainingError(elsewhere)`` when only another worker has one (a collective on
    multi-worker runs, so that no worker is left waiting for the others)."""
    if dist.any_worker(problem is not None):
        raise problem or TrainingError(elsewhere)


def run_training(trainer_cls, cfg: TrainConfig, overwrite: bool = False, log=print,
                 max_new_steps: int | None = None, dist: Distribution | None = None) -> dict:
    """Train (or resume) ``cfg`` to its step budget, then export. Returns a summary dict with ``status`` one of
    ``completed``, ``paused`` (``max_new_steps`` reached; checkpoint saved) or ``interrupted`` (by a signal,
    named in ``signal``; checkpoint saved).

    ``dist`` is the distribution to train under; by default it is made from ``cfg.strategy`` here (``train_cli``
    makes it first thing in the process instead, as MultiWorkerMirroredStrategy requires). In a multi-worker run
    every worker calls this; only the chief writes the work directory."""
    cfg = dataclasses.replace(cfg, workdir=os.path.abspath(cfg.workdir), data=os.path.abspath(cfg.data),
                              curve_data=os.path.abspath(cfg.curve_data) if cfg.curve_data else "")
    info = DataInfo.from_store(cfg.data)
    if dist is None:
        dist = Distribution(make_strategy(cfg.strategy, cfg.cpu_devices))
    cfg, message = resolve_precision(cfg, previous_config(cfg.workdir), RUN_CONTROL_FIELDS, dist)  # resumes keep theirs
    if cfg.precision_probe:
        log(f"[{cfg.model}] {message}")
    curves = learning_curves(cfg, total_steps(cfg, info), dist.is_chief)   # refuses a leaking tuning store
    trainer = trainer_cls(cfg, info, dist)  # first, so a bad extractor or model setting leaves no run directory
    chief = dist.is_chief
    checkpoint = tf.train.Checkpoint(step=trainer.step, **trainer.trackables())
    checkpoint_dir = os.path.join(cfg.workdir, "checkpoints")
    manager = problem = None
    if chief:
        try:
            prepare_workdir(cfg, overwrite)
            manager = _checkpoint_manager(checkpoint, checkpoint_dir, cfg.keep_checkpoints, log)
        except TrainingError as exc:
            problem = exc
    _agree(dist, problem, "the chief worker could not prepare the work directory (see its log)")
    last_good = problem = None
    try:           # every worker restores from the chief's directory (a shared filesystem)
        last_good = _restore_newest(checkpoint, checkpoint_dir, manager.checkpoints if manager else [], log)
    except TrainingError as exc:
        problem = exc
    _agree(dist, problem, "another worker could not restore a checkpoint (see its log)")
    start = int(trainer.step.numpy())
    if dist.num_workers > 1 and dist.any_worker(dist.chief_value(start) != start):
        raise TrainingError(f"the workers restored different steps (this one: {start}); the work directory must be "
                            "on a filesystem every worker shares")
    if last_good:
        log(f"[{cfg.model}] resuming from step {start} ({last_good})")

    def write_checkpoint(step: int) -> str:
        if manager is not None:
            return manager.save(checkpoint_number=step)
        _in_scratch(dist, lambda scratch: tf.train.CheckpointManager(checkpoint, scratch, max_to_keep=1)
                    .save(checkpoint_number=step))
        return os.path.join(checkpoint_dir, f"ckpt-{step}")      # the chief's copy

    saved_here: dict = {}     # step -> checkpoint known good: written by this process or just restored

    def save(step: int) -> str:
        """Checkpoint ``step`` unless this process already saved exactly that step."""
        if step not in saved_here:
            saved_here[step] = write_checkpoint(step)
        return saved_here[step]

    if last_good:
        saved_here[start] = last_good      # restored successfully, so it is known to be good
    metrics_path = os.path.join(cfg.workdir, "metrics.jsonl")
    if chief:
        _drop_metrics_after(metrics_path, start)
    skipped = consecutive_skips = 0
    total = trainer.total_steps
    writer = (tf.summary.create_file_writer(os.path.join(cfg.workdir, "tb")) if chief
              else tf.summary.create_noop_writer())
    summary = dict(model=cfg.model, workdir=cfg.workdir, total_steps=total, start_step=start)
    if start < total:
        log(f"[{cfg.model}] training {info.task} {info.domain_a}<->{info.domain_b} at {cfg.image_size}x{cfg.image_size}, "
            f"batch {cfg.batch_size}, steps {start}->{total} (profile {cfg.profile}: {describe_steps(cfg, info)})"
            + (f" under {dist}" if dist.strategy is not None else "") + (f"; {curves.describe()}" if curves else ""))
        data = dist.distribute_dataset(lambda: pipeline.train_dataset(cfg.data, cfg.image_size, cfg.batch_size,
                                                                      seed=cfg.seed, start_step=start), cfg.batch_size)
        progress = Progress(total, start=start, label=f"[{cfg.model}]")
        t_start = time.monotonic()
        t_window, n_window, sums = time.monotonic(), 0, {}
        step = start
        with _StopRequest() as stop, open(metrics_path if chief else os.devnull, "a") as metrics_file:
            for a, b in data:
                if step >= total:
                    break
                before = trainer.snapshot() if cfg.skip_nonfinite else None
                losses = {k: float(v) for k, v in trainer.run_step(a, b, tf.constant(step, tf.int64)).items()}
                bad = [k for k, v in losses.items() if not math.isfinite(v)]
                if bad and before is None:
                    raise TrainingError(f"non-finite loss {bad[0]}={losses[bad[0]]} at step {step + 1}; the last good "
                                        f"checkpoint is {last_good or 'none (no checkpoint yet)'}; --skip_nonfinite "
                                        "skips such batches")
                if bad:
                    trainer.restore_snapshot(before)
                    skipped += 1
                    consecutive_skips += 1
                    if consecutive_skips > MAX_CONSECUTIVE_SKIPS:
                        raise TrainingError(f"{consecutive_skips} consecutive steps with non-finite losses (last: "
                                            f"{bad[0]} at step {step + 1}); the run is diverging, not meeting a bad "
                                            f"batch; the last good checkpoint is {last_good or 'none'}")
                    log(f"[{cfg.model}] warning: non-finite loss {bad[0]}={losses[bad[0]]} at step {step + 1}; "
                        "batch skipped, the step's updates undone")
                step += 1
                trainer.step.assign(step)
                if not bad:
                    consecutive_skips = 0
                    n_window += 1
                    for k, v in losses.items():
                        sums[k] = sums.get(k, 0.0) + v
                    progress.update(step, losses)
                if step % cfg.log_every == 0 or step == total:
                    now = time.monotonic()
                    record = dict(step=step, time_s=round(now - t_start, 3),
                                  sec_per_step=round((now - t_window) / max(n_window, 1), 4),
                                  lr=trainer.learning_rate(), **{k: v / n_window for k, v in sums.items()},
                                  **({"skipped_steps": skipped} if skipped else {}))
                    metrics_file.write(json.dumps(record) + "\n")
                    metrics_file.flush()
                    with writer.as_default(step=step):
                        for k, v in record.items():
                            if k not in ("step", "time_s"):
                                tf.summary.scalar(k if k in ("lr", "sec_per_step") else f"loss/{k}", v)
                    t_window, n_window, sums = now, 0, {}
                if curves is not None and curves.due(step):      # before the step's checkpoint; kept out of sec_per_step
                    t_window += curves.log(step, trainer.export_models(), metrics_file, writer)
                if chief and (step % cfg.image_every == 0 or step == total):
                    grid = trainer.sample_grid(dist.local_batch(a), dist.local_batch(b))
                    _write_grid(cfg.workdir, step, grid, writer)
                if step % cfg.checkpoint_every == 0 or step == total:
                    last_good = save(step)
                early = None
                stopping = dist.any_worker(stop.signum is not None)     # all workers stop at the same step
                if max_new_steps is not None and step - start >= max_new_steps and step < total:
                    early = dict(status="paused", message=f"paused after {step - start} new steps at step {step}; "
                                                          "checkpoint saved")
                elif stopping:
                    name = signal.Signals(stop.signum).name if stop.signum is not None else "SIGTERM"
                    received = "received" if stop.signum is not None else "received by another worker"
                    early = dict(status="interrupted", signal=name, message=f"{name} {received}: checkpoint saved "
                                 f"at step {step}; run the same command again to resume")
                if early:
                    save(step)
                    progress.close()
                    writer.flush()
                    log(f"[{cfg.model}] {early.pop('message')}")
                    return dict(summary, step=step, **early)
        progress.close()
        summary["train_seconds"] = round(time.monotonic() - t_start, 2)
        summary["skipped_steps"] = skipped
        log(f"[{cfg.model}] trained {step - start} steps in {format_duration(summary['train_seconds'])}"
            + (f" ({skipped} skipped for non-finite losses)" if skipped else ""))
    writer.flush()
    save(int(trainer.step.numpy()))
    if chief:
        summary["export"] = trainer.export(cfg.workdir)
    else:
        _in_scratch(dist, trainer.export)        # as the chief does (saving may run collectives); then discarded
        summary["export"] = None
    summary["status"] = "completed"
    summary["step"] = int(trainer.step.numpy())
    return summary
