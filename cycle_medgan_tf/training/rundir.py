"""The run directory as training sees it: ``config.json`` compared with the run's configuration, the checkpoints
(``tf.train.CheckpointManager``; the newest *readable* one is restored), ``metrics.jsonl`` trimmed to the restored
step, and for the non-chief workers of a multi-worker run a scratch directory to save into.

Faults: an unreadable checkpoint (a disk fault, a kill while it was written) is named in a warning and the previous
one is used; an unreadable manager state file is set aside; checkpoints that exist but cannot be restored stop the
run with :class:`TrainingError` (nothing is deleted).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import tempfile

import tensorflow as tf

from cycle_medgan_tf.atomic import atomic_write_text
from cycle_medgan_tf.config import TrainConfig, current_layout
from cycle_medgan_tf.training.distribute import Distribution

# may change between a run and its resume (precision_probe: the record of how precision=auto chose, see precision.py)
RUN_CONTROL_FIELDS = ("skip_nonfinite", "strategy", "cpu_devices", "precision_probe")
METRICS_FILE = "metrics.jsonl"


class TrainingError(Exception):
    """A user-facing training failure (bad work directory, non-finite loss, ...)."""


def _changed_settings(previous, current: dict) -> list[str] | None:
    """The settings (``RUN_CONTROL_FIELDS`` aside) in which an earlier ``config.json`` differs, ``None`` if none."""
    if isinstance(previous, dict):
        previous = {k: v for k, v in previous.items() if k not in RUN_CONTROL_FIELDS}
    current = {k: v for k, v in current.items() if k not in RUN_CONTROL_FIELDS}
    if previous == current:
        return None
    return sorted(k for k in set(current) | set(previous or {}) if (previous or {}).get(k) != current.get(k))


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
        changed = _changed_settings(previous, json.loads(cfg.to_json()))
        if changed is not None:
            if not overwrite:
                raise TrainingError(f"{cfg.workdir} holds a run with a different configuration "
                                    f"(differs in: {', '.join(changed) or 'unreadable config.json'}); "
                                    "use another --workdir or --overwrite to start afresh")
            shutil.rmtree(cfg.workdir)
    elif os.path.isdir(cfg.workdir) and os.listdir(cfg.workdir) and not overwrite:
        raise TrainingError(f"{cfg.workdir} exists, is not empty and holds no run; "
                            "use another --workdir or --overwrite")
    elif os.path.isdir(cfg.workdir) and overwrite:
        shutil.rmtree(cfg.workdir)
    os.makedirs(cfg.workdir, exist_ok=True)
    atomic_write_text(path, cfg.to_json())


def drop_metrics_after(path: str, step: int) -> None:
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


def _checkpoint_number(prefix: str) -> int:
    try:
        return int(prefix.rsplit("-", 1)[-1])
    except ValueError:
        return -1


def checkpoint_manager(checkpoint, directory: str, keep: int, log) -> tf.train.CheckpointManager:
    """A CheckpointManager; an unreadable ``checkpoint`` state file is set aside (renamed ``checkpoint.unreadable``)
    so that the checkpoints themselves are still found by :func:`restore_newest`."""
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


def restore_newest(checkpoint, directory: str, listed, log) -> str | None:
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


def in_scratch(dist: Distribution, fn):
    """``fn(directory)`` in a fresh scratch directory that is removed afterwards: where the non-chief workers of a
    multi-worker run save and export (all workers must, as saving may run collectives), off the chief's files."""
    scratch = tempfile.mkdtemp(prefix=f"cycle-medgan-{dist.task.replace(':', '')}-")
    try:
        return fn(scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def agree(dist: Distribution, problem: Exception | None, elsewhere: str) -> None:
    """Raise ``problem``, or ``TrainingError(elsewhere)`` when only another worker has one (a collective on
    multi-worker runs, so that no worker is left waiting for the others)."""
    if dist.any_worker(problem is not None):
        raise problem or TrainingError(elsewhere)


class RunDirectory:
    """A prepared run directory with ``checkpoint`` restored: :attr:`start` (the restored step), :attr:`last_good`
    (the newest checkpoint known good) and :meth:`save`. Every worker restores from the chief's directory (a shared
    filesystem); only the chief writes it."""

    def __init__(self, cfg: TrainConfig, checkpoint: tf.train.Checkpoint, step: tf.Variable, dist: Distribution,
                 overwrite: bool, log):
        self.workdir, self.dist, self.checkpoint = cfg.workdir, dist, checkpoint
        self.checkpoint_dir = os.path.join(cfg.workdir, "checkpoints")
        self.metrics_path = os.path.join(cfg.workdir, METRICS_FILE)
        self.manager, problem = self._prepare(cfg, overwrite, log) if dist.is_chief else (None, None)
        agree(dist, problem, "the chief worker could not prepare the work directory (see its log)")
        self.last_good = self._restore(log)
        self.start = int(step.numpy())
        if dist.num_workers > 1 and dist.any_worker(dist.chief_value(self.start) != self.start):
            raise TrainingError(f"the workers restored different steps (this one: {self.start}); the work directory "
                                "must be on a filesystem every worker shares")
        self._saved = {self.start: self.last_good} if self.last_good else {}   # step -> checkpoint known good
        if dist.is_chief:
            drop_metrics_after(self.metrics_path, self.start)

    def _prepare(self, cfg: TrainConfig, overwrite: bool, log) -> tuple:
        """(the chief's checkpoint manager, ``None``) or (``None``, the problem)."""
        try:
            prepare_workdir(cfg, overwrite)
            return checkpoint_manager(self.checkpoint, self.checkpoint_dir, cfg.keep_checkpoints, log), None
        except TrainingError as exc:
            return None, exc

    def _restore(self, log) -> str | None:
        last_good = problem = None
        try:
            last_good = restore_newest(self.checkpoint, self.checkpoint_dir,
                                       self.manager.checkpoints if self.manager else [], log)
        except TrainingError as exc:
            problem = exc
        agree(self.dist, problem, "another worker could not restore a checkpoint (see its log)")
        return last_good

    def _write(self, step: int) -> str:
        if self.manager is not None:
            return self.manager.save(checkpoint_number=step)
        in_scratch(self.dist, lambda scratch: tf.train.CheckpointManager(self.checkpoint, scratch, max_to_keep=1)
                   .save(checkpoint_number=step))
        return os.path.join(self.checkpoint_dir, f"ckpt-{step}")      # the chief's copy

    def save(self, step: int) -> str:
        """Checkpoint ``step`` unless this process already saved (or restored) exactly that step; it becomes
        :attr:`last_good`."""
        if step not in self._saved:
            self._saved[step] = self._write(step)
        self.last_good = self._saved[step]
        return self.last_good
