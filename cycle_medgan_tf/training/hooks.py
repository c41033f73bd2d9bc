"""What the training loop does around each step, one hook per concern. After every step the loop hands each hook a
:class:`StepDone`; a hook acts when it is due (``step % every == 0`` or the last step):

* :class:`NonFiniteGuard` runs the step itself: a non-finite loss stops the run, or with ``skip_nonfinite`` the
  step's updates are undone from a snapshot taken before it;
* :class:`ConsoleProgress` (the progress bar), :class:`MetricsLog` (``metrics.jsonl`` and TensorBoard scalars),
  :class:`CurvePoints` (learning curves), :class:`GradientNorms` (how much each loss term steers the generators),
  :class:`ImageGrids` (``samples/`` and TensorBoard images), :class:`Checkpoints`;
* :class:`StopControl` ends the loop early: paused after ``max_new_steps``, or interrupted by SIGINT/SIGTERM.

Each hook only needs the objects it is given, so each can be exercised without training a network.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import time
from typing import Callable

import numpy as np
import tensorflow as tf

from cycle_medgan_tf.evaluation.curves import GRADIENT_RECORD_KIND
from cycle_medgan_tf.training.progress import Progress
from cycle_medgan_tf.training.rundir import TrainingError

MAX_CONSECUTIVE_SKIPS = 20                  # with skip_nonfinite: more in a row means divergence; stop


@dataclasses.dataclass(frozen=True)
class StepDone:
    """A finished step: its number (1-based: the step count after it), the run's last step, the batches it used
    and its losses (``None`` when it was skipped and undone)."""

    step: int
    total: int
    a: object = None
    b: object = None
    losses: dict | None = None

    def due(self, every: int) -> bool:
        return self.step % every == 0 or self.step == self.total


class NonFiniteGuard:
    """Runs one train step and checks its losses: a non-finite one raises :class:`TrainingError` naming the step,
    the loss and the last good checkpoint; with ``skip`` the step is undone instead (at most
    ``MAX_CONSECUTIVE_SKIPS`` in a row)."""

    def __init__(self, trainer, skip: bool, last_good: Callable[[], str | None], log, label: str = ""):
        self.trainer, self.skip, self.last_good, self.log, self.label = trainer, skip, last_good, log, label
        self.skipped = self.consecutive = 0

    def run(self, step: int, a, b) -> dict | None:
        """The losses of step ``step + 1`` as floats, or ``None`` when it was skipped."""
        before = self.trainer.snapshot() if self.skip else None
        losses = {k: float(v) for k, v in self.trainer.run_step(a, b, tf.constant(step, tf.int64)).items()}
        bad = [k for k, v in losses.items() if not math.isfinite(v)]
        if not bad:
            self.consecutive = 0
            return losses
        if before is None:
            raise TrainingError(f"non-finite loss {bad[0]}={losses[bad[0]]} at step {step + 1}; the last good "
                                f"checkpoint is {self.last_good() or 'none (no checkpoint yet)'}; --skip_nonfinite "
                                "skips such batches")
        self.trainer.restore_snapshot(before)
        self.skipped += 1
        self.consecutive += 1
        if self.consecutive > MAX_CONSECUTIVE_SKIPS:
            raise TrainingError(f"{self.consecutive} consecutive steps with non-finite losses (last: "
                                f"{bad[0]} at step {step + 1}); the run is diverging, not meeting a bad "
                                f"batch; the last good checkpoint is {self.last_good() or 'none'}")
        self.log(f"{self.label} warning: non-finite loss {bad[0]}={losses[bad[0]]} at step {step + 1}; "
                 "batch skipped, the step's updates undone")
        return None


class ConsoleProgress:
    """The progress bar, updated with the losses of every step that was not skipped."""

    def __init__(self, total: int, start: int, label: str):
        self.bar = Progress(total, start=start, label=label)

    def after_step(self, done: StepDone) -> None:
        if done.losses is not None:
            self.bar.update(done.step, done.losses)

    def close(self) -> None:
        self.bar.close()


class MetricsLog:
    """Every ``every`` steps and at the last, one ``metrics.jsonl`` record (step, time, seconds per step of the
    window, learning rate, each loss averaged over the window's kept steps, skipped steps so far) and the same as
    TensorBoard scalars. Time spent outside training (:meth:`exclude`) is kept out of ``sec_per_step``."""

    def __init__(self, path: str, writer, every: int, learning_rate: Callable[[], float],
                 skipped: Callable[[], int], clock: Callable[[], float] = time.monotonic):
        self.file = open(path, "a")
        self.writer, self.every, self.learning_rate, self.skipped = writer, every, learning_rate, skipped
        self.clock = clock
        self.t_start = self.t_window = clock()
        self.n_window, self.sums = 0, {}

    def after_step(self, done: StepDone) -> None:
        if done.losses is not None:
            self.n_window += 1
            for k, v in done.losses.items():
                self.sums[k] = self.sums.get(k, 0.0) + v
        if done.due(self.every):
            self.write(done.step, self.clock())

    def write(self, step: int, now: float) -> dict:
        skipped = self.skipped()
        record = dict(step=step, time_s=round(now - self.t_start, 3),
                      sec_per_step=round((now - self.t_window) / max(self.n_window, 1), 4),
                      lr=self.learning_rate(), **{k: v / self.n_window for k, v in self.sums.items()},
                      **({"skipped_steps": skipped} if skipped else {}))
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        with self.writer.as_default(step=step):
            for k, v in record.items():
                if k not in ("step", "time_s"):
                    tf.summary.scalar(k if k in ("lr", "sec_per_step") else f"loss/{k}", v)
        self.t_window, self.n_window, self.sums = now, 0, {}
        return record

    def write_record(self, record: dict, scalars: dict) -> None:
        """Append a record of another kind (curve points, gradient norms: ``record["kind"]``) to ``metrics.jsonl``
        (flushed) and ``scalars`` (TensorBoard name -> value; ``None`` left out) at ``record["step"]``."""
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        with self.writer.as_default(step=record["step"]):
            for name, value in scalars.items():
                if value is not None:
                    tf.summary.scalar(name, value)

    def exclude(self, seconds: float) -> None:
        self.t_window += seconds

    def seconds(self) -> float:
        return self.clock() - self.t_start

    def close(self) -> None:
        self.file.close()


class CurvePoints:
    """Learning-curve points (training/curves.py) at their steps, written with the metrics and kept out of their
    timing; before the step's checkpoint, so that a resumed run neither repeats nor loses one."""

    def __init__(self, curves, translators: Callable[[], dict], metrics: MetricsLog):
        self.curves, self.translators, self.metrics = curves, translators, metrics

    def after_step(self, done: StepDone) -> None:
        if not self.curves.due(done.step):
            return
        t0 = time.monotonic()
        record = self.curves.record(done.step, self.translators())
        self.metrics.write_record(record, {f"curves/{k}": v for k, v in record.items()
                                           if k not in ("kind", "step", "slices")})
        self.metrics.exclude(time.monotonic() - t0)


class GradientNorms:
    """Every ``every`` steps and at the last, ``gradient_norms(a, b)`` of the step's batch (this worker's part):
    one ``metrics.jsonl`` record ``{"kind": "gradients", "step", "grad_norm_<term>": ...}`` with each term's norm
    and its share of the summed norms (``grad_share_<term>``), and the same as TensorBoard scalars; its time is
    kept out of the step timing; written before the step's checkpoint, like the curve points."""

    def __init__(self, gradient_norms, every: int, local_batch, metrics: MetricsLog):
        self.gradient_norms, self.every, self.local_batch, self.metrics = gradient_norms, every, local_batch, metrics

    def record(self, step: int, a, b) -> dict:
        norms = {k: float(v) for k, v in self.gradient_norms(self.local_batch(a), self.local_batch(b)).items()}
        terms = {k: v for k, v in norms.items() if k != "total"}
        summed = sum(terms.values())
        return dict(kind=GRADIENT_RECORD_KIND, step=step, **{f"grad_norm_{k}": round(v, 6) for k, v in norms.items()},
                    **{f"grad_share_{k}": round(v / summed, 4) if summed > 0 else None for k, v in terms.items()})

    def after_step(self, done: StepDone) -> None:
        if not done.due(self.every):
            return
        t0 = time.monotonic()
        record = self.record(done.step, done.a, done.b)
        self.metrics.write_record(record, {f"gradients/{k[5:]}": v for k, v in record.items() if k.startswith("grad_")})
        self.metrics.exclude(time.monotonic() - t0)


def write_grid(workdir: str, step: int, grid: np.ndarray, writer) -> str:
    """``grid`` (H, W) in [-1, 1] as ``samples/step_NNNNNNN.png`` and as a TensorBoard image; returns the path."""
    image = np.clip((grid + 1.0) * 127.5, 0, 255).astype(np.uint8)
    os.makedirs(os.path.join(workdir, "samples"), exist_ok=True)
    path = os.path.join(workdir, "samples", f"step_{step:07d}.png")
    tf.io.write_file(path, tf.io.encode_png(image[..., None]))
    with writer.as_default(step=step):
        tf.summary.image("samples/A-B-A_and_B-A-B", image[None, ..., None])
    return path


class ImageGrids:
    """Every ``every`` steps and at the last, ``sample_grid(a, b)`` of this worker's part of the step's batches."""

    def __init__(self, workdir: str, every: int, sample_grid, local_batch, writer):
        self.workdir, self.every, self.sample_grid, self.local_batch, self.writer = (workdir, every, sample_grid,
                                                                                     local_batch, writer)

    def after_step(self, done: StepDone) -> None:
        if done.due(self.every):
            grid = self.sample_grid(self.local_batch(done.a), self.local_batch(done.b))
            write_grid(self.workdir, done.step, grid, self.writer)


class Checkpoints:
    """Every ``every`` steps and at the last, ``save(step)``."""

    def __init__(self, save: Callable[[int], str], every: int):
        self.save, self.every = save, every

    def after_step(self, done: StepDone) -> None:
        if done.due(self.every):
            self.save(done.step)


class StopControl:
    """Turns SIGINT/SIGTERM into a flag checked between steps (a context manager: handlers installed on entry,
    restored on exit) and decides when the run ends early: :meth:`check` returns ``None`` or
    ``{"status": "paused"|"interrupted", "message": ..., ["signal": name]}``. Every worker stops at the same step:
    a signal on any worker stops them all."""

    def __init__(self, start: int, max_new_steps: int | None = None, any_worker: Callable[[bool], bool] = bool):
        self.start, self.max_new_steps, self.any_worker = start, max_new_steps, any_worker
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

    def check(self, step: int, total: int) -> dict | None:
        stopping = self.any_worker(self.signum is not None)     # a collective: called on every step
        if self.max_new_steps is not None and step - self.start >= self.max_new_steps and step < total:
            return dict(status="paused", message=f"paused after {step - self.start} new steps at step {step}; "
                                                 "checkpoint saved")
        if stopping:
            name = signal.Signals(self.signum).name if self.signum is not None else "SIGTERM"
            received = "received" if self.signum is not None else "received by another worker"
            return dict(status="interrupted", signal=name, message=f"{name} {received}: checkpoint saved "
                        f"at step {step}; run the same command again to resume")
        return None
