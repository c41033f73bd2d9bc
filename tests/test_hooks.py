"""The training loop's hooks one at a time, without training a network: the non-finite guard, the metrics log,
the per-term gradient norms, checkpoint timing, stop/pause and signals, the run directory's metrics trimming and
config comparison; the store is validated once per training start; the atomic writer leaves nothing half
written."""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest
import tensorflow as tf

from cycle_medgan_tf.atomic import atomic_path, atomic_write_text
from cycle_medgan_tf.config import resolve_config
from cycle_medgan_tf.training import hooks
from cycle_medgan_tf.training.rundir import RunDirectory, TrainingError, drop_metrics_after, prepare_workdir
from cycle_medgan_tf.training.trainer import run_training


class ScriptedTrainer:
    """Stands in for a trainer: ``run_step`` returns the scripted losses and changes one variable, which
    ``snapshot``/``restore_snapshot`` save and restore as the real ones do."""

    def __init__(self, losses):
        self.losses = list(losses)
        self.weight = tf.Variable(0.0)

    def run_step(self, a, b, step):
        self.weight.assign_add(1.0)
        return {"g": tf.constant(self.losses[int(step)])}

    def snapshot(self):
        return [tf.identity(self.weight)]

    def restore_snapshot(self, values):
        self.weight.assign(values[0])


def test_the_guard_stops_at_a_nonfinite_loss_and_names_the_step_and_checkpoint():
    guard = hooks.NonFiniteGuard(ScriptedTrainer([1.0, float("nan")]), skip=False, last_good=lambda: "ckpt-1",
                                 log=print)
    assert guard.run(0, None, None) == {"g": 1.0}
    with pytest.raises(TrainingError, match=r"non-finite loss g=nan at step 2; the last good checkpoint is ckpt-1"):
        guard.run(1, None, None)


def test_the_guard_undoes_a_skipped_step_and_stops_a_diverging_run():
    trainer = ScriptedTrainer([1.0, float("inf"), 2.0] + [float("nan")] * (hooks.MAX_CONSECUTIVE_SKIPS + 1))
    messages = []
    guard = hooks.NonFiniteGuard(trainer, skip=True, last_good=lambda: None, log=messages.append, label="[m]")
    assert guard.run(0, None, None) == {"g": 1.0} and float(trainer.weight.numpy()) == 1.0
    assert guard.run(1, None, None) is None and float(trainer.weight.numpy()) == 1.0     # undone
    assert guard.skipped == 1 and "[m] warning: non-finite loss g=inf at step 2" in messages[0]
    assert guard.run(2, None, None) == {"g": 2.0} and guard.consecutive == 0
    for step in range(3, 3 + hooks.MAX_CONSECUTIVE_SKIPS):
        assert guard.run(step, None, None) is None
    with pytest.raises(TrainingError, match="consecutive steps with non-finite losses"):
        guard.run(3 + hooks.MAX_CONSECUTIVE_SKIPS, None, None)


def _records(path):
    return [json.loads(line) for line in open(path)]


def test_the_metrics_log_averages_kept_steps_per_window_and_excludes_other_work(tmp_path):
    ticks = iter(float(t) for t in range(0, 1000, 10))     # each reading of the clock is 10 s later
    skipped = [0]
    log = hooks.MetricsLog(str(tmp_path / "metrics.jsonl"), tf.summary.create_noop_writer(), every=2,
                           learning_rate=lambda: 0.5, skipped=lambda: skipped[0], clock=lambda: next(ticks))
    log.after_step(hooks.StepDone(1, 3, losses={"g": 1.0}))
    log.exclude(5.0)                                        # e.g. a curve point: not training time
    log.after_step(hooks.StepDone(2, 3, losses={"g": 3.0}))
    skipped[0] = 1
    log.after_step(hooks.StepDone(3, 3, losses=None))       # the last step, skipped
    log.close()
    first, last = _records(tmp_path / "metrics.jsonl")
    assert first == dict(step=2, time_s=10.0, sec_per_step=2.5, lr=0.5, g=2.0)   # (10 s - 5 s) / 2 steps
    assert last["step"] == 3 and last["skipped_steps"] == 1 and "g" not in last


def test_checkpoints_and_grids_act_every_n_steps_and_at_the_last(tmp_path):
    saved = []
    checkpoints = hooks.Checkpoints(saved.append, every=3)
    grids = hooks.ImageGrids(str(tmp_path), 4, lambda a, b: np.zeros((4, 8), np.float32), lambda x: x,
                             tf.summary.create_noop_writer())
    for step in range(1, 8):
        done = hooks.StepDone(step, 7, a=None, b=None, losses={})
        checkpoints.after_step(done)
        grids.after_step(done)
    assert saved == [3, 6, 7]
    assert sorted(os.listdir(tmp_path / "samples")) == ["step_0000004.png", "step_0000007.png"]


def test_gradient_norms_are_logged_with_shares_when_due_and_kept_out_of_the_timing(tmp_path):
    ticks = iter(float(t) for t in range(0, 1000, 10))
    log = hooks.MetricsLog(str(tmp_path / "metrics.jsonl"), tf.summary.create_noop_writer(), every=100,
                           learning_rate=lambda: 0.5, skipped=lambda: 0, clock=lambda: next(ticks))
    seen = []

    def gradient_norms(a, b):
        seen.append((a, b))
        return {"adversarial": tf.constant(1.0), "cycle": tf.constant(3.0), "total": tf.constant(2.5)}

    gradients = hooks.GradientNorms(gradient_norms, 2, lambda x: f"local {x}", log)
    for step in range(1, 6):
        gradients.after_step(hooks.StepDone(step, 5, a=f"a{step}", b=f"b{step}", losses={}))
    log.close()
    records = _records(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in records] == [2, 4, 5] and seen[0] == ("local a2", "local b2")
    assert records[0] == dict(kind="gradients", step=2, grad_norm_adversarial=1.0, grad_norm_cycle=3.0,
                              grad_norm_total=2.5, grad_share_adversarial=0.25, grad_share_cycle=0.75)
    assert log.t_window > 0                              # the time it took is not counted as training time


def test_stop_control_pauses_after_new_steps_and_turns_a_signal_into_an_interruption():
    previous = signal.getsignal(signal.SIGTERM)
    with hooks.StopControl(start=5, max_new_steps=2) as stop:
        assert stop.check(6, total=10) is None
        assert stop.check(7, total=10)["status"] == "paused"
        assert stop.check(10, total=10) is None             # the budget's end is completion, not a pause
        os.kill(os.getpid(), signal.SIGTERM)
        both = stop.check(8, total=10)
    assert signal.getsignal(signal.SIGTERM) is previous
    assert both["status"] == "paused"                        # a pause due at the same step comes first
    with hooks.StopControl(start=0) as stop:
        os.kill(os.getpid(), signal.SIGINT)
        early = stop.check(1, total=10)
    assert early["status"] == "interrupted" and early["signal"] == "SIGINT" and "at step 1" in early["message"]
    other = hooks.StopControl(start=0, any_worker=lambda flag: True)       # another worker was signalled
    assert other.check(1, total=10)["message"].startswith("SIGTERM received by another worker")


def test_resume_trims_metrics_after_the_restored_step_and_cut_lines(tmp_path):
    path = tmp_path / "metrics.jsonl"
    lines = [json.dumps(dict(step=s)) + "\n" for s in (1, 2)] + [json.dumps(dict(kind="curve", step=2)) + "\n",
                                                                 json.dumps(dict(step=3)) + "\n", '{"step": 4, "g"']
    path.write_text("".join(lines))
    drop_metrics_after(str(path), 2)
    assert path.read_text() == "".join(lines[:3])


def _config(tmp_path, **overrides):
    return resolve_config("cyclegan", "smoke", dict(data="x.h5", workdir=str(tmp_path / "run"), **overrides))


def test_a_run_directory_of_another_configuration_is_refused_and_a_fresh_one_restores_nothing(tmp_path):
    prepare_workdir(_config(tmp_path), overwrite=False)
    with pytest.raises(TrainingError, match=r"differs in: steps"):
        prepare_workdir(_config(tmp_path, steps=9), overwrite=False)
    step = tf.Variable(0, dtype=tf.int64)

    class OneDevice:
        is_chief, num_workers = True, 1

        @staticmethod
        def any_worker(flag):
            return flag

    run = RunDirectory(_config(tmp_path), tf.train.Checkpoint(step=step), step, OneDevice(), False, print)
    assert run.start == 0 and run.last_good is None
    step.assign(2)
    assert run.save(2).endswith("ckpt-2") and run.save(2) == run.last_good      # saved once
    assert sorted(p for p in os.listdir(tmp_path / "run" / "checkpoints") if p.startswith("ckpt-")) == [
        "ckpt-2.data-00000-of-00001", "ckpt-2.index"]


def test_one_training_start_validates_its_store_once(phantom_store, tmp_path, monkeypatch):
    from cycle_medgan_tf.data import checks
    from cycle_medgan_tf.data.store import check_store
    from tests.test_reliability import TinyTrainer, tiny_config

    calls = []
    real = checks.validate_store
    monkeypatch.setattr(checks, "validate_store", lambda path: calls.append(path) or real(path))
    run_training(TinyTrainer, tiny_config(phantom_store, tmp_path / "a", steps=1), log=lambda m: None)
    assert calls == [os.path.abspath(phantom_store)]
    data = check_store(phantom_store)                      # as train.py does: checked at the entry point
    run_training(TinyTrainer, tiny_config(phantom_store, tmp_path / "b", steps=1), log=lambda m: None, data=data)
    assert len(calls) == 2


def test_atomic_path_replaces_a_directory_whole_or_not_at_all(tmp_path):
    target = tmp_path / "export"
    with atomic_path(target, directory=True) as tmp:
        (open(os.path.join(tmp, "a"), "w")).write("1")
    with pytest.raises(RuntimeError):
        with atomic_path(target, directory=True) as tmp:
            (open(os.path.join(tmp, "b"), "w")).write("2")
            raise RuntimeError("killed while writing")
    assert os.listdir(target) == ["a"]
    with atomic_path(target, directory=True) as tmp:
        (open(os.path.join(tmp, "b"), "w")).write("2")
    assert os.listdir(target) == ["b"]
    atomic_write_text(tmp_path / "t.txt", "x\n")
    assert sorted(os.listdir(tmp_path)) == ["export", "t.txt"]          # no temporary left behind


def test_the_precision_bench_reads_only_step_records_of_a_run_with_curves(tmp_path):
    from cycle_medgan_tf.bench.precision import _final_losses

    path = tmp_path / "metrics.jsonl"
    lines = [dict(step=1, time_s=9.0, sec_per_step=9.0, lr=1e-4, g=4.0),
             dict(kind="curve", step=2, slices=4, a2b_ssim=0.5, eval_s=3.0),
             dict(step=2, time_s=10.0, sec_per_step=1.0, lr=1e-4, g=2.0),
             dict(step=3, time_s=13.0, sec_per_step=3.0, lr=1e-4, g=1.0, skipped_steps=1)]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    losses, sec = _final_losses(str(path), window=2, total=3)
    assert losses == {"g": 1.5} and sec == 2.0           # median of 1.0 and 3.0; the first (tracing) is left out
