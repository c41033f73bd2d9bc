"""Reliability (issue 8): training survives SIGKILL and SIGTERM and resumes exactly, unreadable checkpoints fall
back to the previous one, non-finite losses stop the run (or are skipped on request), bad inputs are refused in one
line with exit code 2, and randomly corrupted stores never crash the validator or the pipeline.

The subprocess tests train the real CycleGAN at 64x64 for 6 steps with a checkpoint after every step; the in-process
tests use :class:`TinyTrainer` (two 3x3 convolutions) so that faults can be injected cheaply and exactly.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cycle_medgan_tf.config import resolve_config
from cycle_medgan_tf.data.validate import validate_store
from cycle_medgan_tf.training.trainer import Trainer, TrainingError, run_training
from tests.conftest import REPO, run_module, write_phantom_store


TRAIN = "cycle_medgan_tf.train"
STEPS = 6
POLL_S = 0.05
START_TIMEOUT_S = 300      # a loaded 2-core machine needs up to a minute or two to import, build and trace


def train_args(store, workdir, *extra) -> list[str]:
    return ["--model=cyclegan", "--profile=smoke", f"--data={store}", f"--workdir={workdir}", f"--steps={STEPS}",
            "--checkpoint_every=1", "--deterministic", *extra]


def start_train(log_path, *args) -> subprocess.Popen:
    """Start ``python -m cycle_medgan_tf.train ARGS`` with stderr to ``log_path`` (read back after it ends)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    with open(log_path, "w") as log:
        return subprocess.Popen([sys.executable, "-m", TRAIN, *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                                stderr=log, text=True)


def latest_in_state(workdir) -> str | None:
    """The checkpoint the state file ``checkpoints/checkpoint`` names as the latest (it is replaced atomically)."""
    try:
        with open(os.path.join(workdir, "checkpoints", "checkpoint")) as f:
            match = re.search(r'^model_checkpoint_path: "(.*)"', f.read(), re.M)
    except OSError:
        return None
    return match.group(1) if match else None


def wait_until(condition, proc: subprocess.Popen, what: str, timeout: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"training exited with {proc.returncode} before {what}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(POLL_S)


def checkpoint_values(path) -> dict:
    """Every variable of a checkpoint (prefix, or the latest in a directory) except the save counter."""
    reader = tf.train.load_checkpoint(str(path))
    skip = ("_CHECKPOINTABLE_OBJECT_GRAPH", "save_counter/.ATTRIBUTES/VARIABLE_VALUE")
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map() if name not in skip}


def assert_same_values(a: dict, b: dict, ignore=()) -> None:
    assert a.keys() == b.keys()
    for name in a:
        if not any(part in name for part in ignore):
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def one_error_line(result, code: int = 2) -> str:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if "error:" in line]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """A directory for the big (340 MB per checkpoint) CycleGAN runs, removed when the module is done."""
    path = tmp_path_factory.mktemp("reliability")
    yield path
    shutil.rmtree(path, ignore_errors=True)


# ---- exact resume after SIGKILL and SIGTERM (real CycleGAN, subprocesses) ---------------------------------------

@pytest.fixture(scope="module")
def straight_run(scratch, phantom_store):
    """6 uninterrupted deterministic steps."""
    workdir = scratch / "straight"
    result = run_module(TRAIN, *train_args(phantom_store, workdir))
    assert result.returncode == 0, result.stderr
    return workdir


@pytest.fixture(scope="module")
def interrupted_run(scratch, phantom_store):
    """The same 6 steps: SIGKILL once the checkpoint of step 3 is recorded; resume with the same command and
    SIGTERM it once it has saved a new checkpoint; resume again to the end."""
    workdir = scratch / "interrupted"
    args = train_args(phantom_store, workdir)
    out = {}

    killed = start_train(scratch / "killed.log", *args)
    wait_until(lambda: latest_in_state(workdir) == "ckpt-3", killed, "the checkpoint of step 3")
    os.kill(killed.pid, signal.SIGKILL)
    killed.communicate(timeout=60)
    out["killed_rc"] = killed.returncode

    resumed = start_train(scratch / "resumed.log", *args)
    log = lambda: (scratch / "resumed.log").read_text()
    wait_until(lambda: re.search(r"resuming from step (\d+)", log()), resumed, "the resume message")
    out["resumed_from"] = int(re.search(r"resuming from step (\d+)", log()).group(1))
    target = f"ckpt-{out['resumed_from'] + 1}"
    wait_until(lambda: latest_in_state(workdir) == target, resumed, f"{target} after resuming")
    resumed.send_signal(signal.SIGTERM)
    resumed.communicate(timeout=120)
    out["term_rc"], out["term_log"] = resumed.returncode, log()
    out["term_latest"] = latest_in_state(workdir)

    final = run_module(TRAIN, *args)
    out["final"] = final
    out["workdir"] = workdir
    return out


def test_sigkill_then_resume_continues_exactly(straight_run, interrupted_run):
    assert interrupted_run["killed_rc"] == -signal.SIGKILL
    assert interrupted_run["resumed_from"] >= 3
    final = interrupted_run["final"]
    assert final.returncode == 0, final.stderr
    assert json.loads(final.stdout.strip().splitlines()[-1])["step"] == STEPS
    straight = checkpoint_values(straight_run / "checkpoints")
    resumed = checkpoint_values(interrupted_run["workdir"] / "checkpoints")
    assert len(straight) > 400 and {name.split("/")[0] for name in straight} == {
        "generator_optimizer", "discriminator_optimizer", "pool_a", "pool_b", "step"}
    assert_same_values(straight, resumed)     # weights, Adam slots, history pools and step: bit for bit


def test_sigterm_saves_a_checkpoint_exits_143_and_resumes_there(interrupted_run):
    assert interrupted_run["term_rc"] == 143, interrupted_run["term_log"]
    match = re.search(r"SIGTERM received: checkpoint saved at step (\d+); run the same command again to resume",
                      interrupted_run["term_log"])
    assert match, interrupted_run["term_log"]
    saved = int(match.group(1))
    assert saved > interrupted_run["resumed_from"] and interrupted_run["term_latest"] == f"ckpt-{saved}"
    assert f"resuming from step {saved} " in interrupted_run["final"].stderr


# ---- bad input to the train CLI (subprocesses) -------------------------------------------------------------------

@pytest.mark.parametrize("flags, differs", [(["--model=unit"], "model"), (["--image_size=32"], "image_size")])
def test_checkpoint_of_another_model_or_size_is_refused(straight_run, phantom_store, flags, differs):
    config = (straight_run / "config.json").read_bytes()
    state = (straight_run / "checkpoints" / "checkpoint").read_bytes()
    replaced = {flag.split("=")[0] for flag in flags}
    args = [a for a in train_args(phantom_store, straight_run) if a.split("=")[0] not in replaced]
    line = one_error_line(run_module(TRAIN, *args, *flags))
    assert "different configuration" in line and re.search(rf"differs in: [^)]*\b{differs}\b", line), line
    assert (straight_run / "config.json").read_bytes() == config
    assert (straight_run / "checkpoints" / "checkpoint").read_bytes() == state


def test_nonfinite_loss_in_the_cli_exits_3_and_keeps_the_last_good_checkpoint(scratch, phantom_store):
    """A learning rate of 1e30 makes the weights explode after step 1, so step 2's losses are NaN; then the same
    run with its only checkpoint truncated (a fault during a save) is refused in one line."""
    workdir = scratch / "diverging"
    args = train_args(phantom_store, workdir, "--steps=3", "--lr=1e30")
    line = one_error_line(run_module(TRAIN, *args), code=3)
    assert re.search(r"non-finite loss \w+=(nan|inf|-inf) at step 2; the last good checkpoint is \S+ckpt-1;", line)
    assert latest_in_state(workdir) == "ckpt-1" and not list((workdir / "checkpoints").glob("ckpt-2*"))
    kept = checkpoint_values(workdir / "checkpoints" / "ckpt-1")
    assert all(np.all(np.isfinite(v)) for v in kept.values() if np.issubdtype(np.asarray(v).dtype, np.floating))

    data = workdir / "checkpoints" / "ckpt-1.data-00000-of-00001"
    with open(data, "r+b") as f:
        f.truncate(os.path.getsize(data) // 3)
    line = one_error_line(run_module(TRAIN, *args))
    assert "can be restored: ckpt-1 (" in line and "--overwrite" in line
    assert data.exists() and not list((workdir / "checkpoints").glob("ckpt-2*"))


@pytest.fixture(scope="module")
def extractor_file(tmp_path_factory):
    from cycle_medgan_tf.models.bigan import build_bigan, image_path_weights
    from cycle_medgan_tf.models.pretrained import save_extractor_weights

    keras.utils.set_random_seed(0)
    path = str(tmp_path_factory.mktemp("extractor") / "feature_extractor.npz")
    save_extractor_weights(path, image_path_weights(build_bigan(32, 16)["discriminator"]), {"test": True})
    return path


def test_truncated_extractor_file_is_refused_in_the_cli(extractor_file, phantom_store, tmp_path):
    truncated = tmp_path / "extractor.npz"
    truncated.write_bytes(open(extractor_file, "rb").read()[:1000])
    shutil.copy(extractor_file + ".sha256", str(truncated) + ".sha256")
    result = run_module(TRAIN, "--model=cycle_medgan", "--profile=smoke", f"--data={phantom_store}",
                        f"--workdir={tmp_path / 'run'}", f"--extractor={truncated}")
    line = one_error_line(result)
    assert "corrupt or not the expected file" in line and str(truncated) in line
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_truncated_extractor_with_matching_checksum_is_a_weights_error(extractor_file, tmp_path):
    from cycle_medgan_tf.models.pretrained import WeightsError, load_feature_extractor, sha256_file

    truncated = tmp_path / "extractor.npz"
    truncated.write_bytes(open(extractor_file, "rb").read()[:1000])
    (tmp_path / "extractor.npz.sha256").write_text(f"{sha256_file(str(truncated))}  extractor.npz\n")
    with pytest.raises(WeightsError):
        load_feature_extractor(str(truncated))


# ---- fault injection in-process: a tiny trainer --------------------------------------------------------------------

class TinyTrainer(Trainer):
    """Two 3x3-conv translators trained on L1 with one Adam, plus a non-trainable variable every step changes.
    The loss (and so every gradient) is NaN at the 0-based step ``BAD_STEP`` (-1: never)."""

    BAD_STEP = -1

    def build(self) -> None:
        def net(name, seed):
            return keras.Sequential([keras.Input((self.cfg.image_size, self.cfg.image_size, 1)),
                                     keras.layers.Conv2D(1, 3, padding="same", activation="tanh",
                                                         kernel_initializer=keras.initializers.GlorotUniform(seed))],
                                    name=name)
        self.a2b, self.b2a = net("tiny_a2b", 1), net("tiny_b2a", 2)
        self.params = self.a2b.trainable_variables + self.b2a.trainable_variables
        self.optimizer = self.make_optimizer(self.params)
        self.seen = tf.Variable(0.0, trainable=False, name="seen")

    def train_step(self, a, b, step):
        poison = tf.where(tf.equal(step, self.BAD_STEP), float("nan"), 0.0)
        with tf.GradientTape() as tape:
            loss = (tf.reduce_mean(tf.abs(self.a2b(a, training=True) - b))
                    + tf.reduce_mean(tf.abs(self.b2a(b, training=True) - a))) * (1.0 + poison)
        self.apply(self.optimizer, tape, loss, self.params)
        self.seen.assign_add(tf.reduce_mean(a) + poison)
        return {"l1": loss}

    def trackables(self) -> dict:
        return dict(a2b=self.a2b, b2a=self.b2a, optimizer=self.optimizer, seen=self.seen)

    def export_models(self) -> dict:
        return {"a2b": self.a2b, "b2a": self.b2a}


def nan_at(step_number: int):
    """A TinyTrainer whose losses are NaN at (1-based) ``step_number``."""
    return type(f"TinyNaNAt{step_number}", (TinyTrainer,), {"BAD_STEP": step_number - 1})


def tiny_config(store, workdir, **overrides):
    values = dict(data=store, workdir=str(workdir), steps=3, checkpoint_every=1, keep_checkpoints=10)
    return resolve_config("cyclegan", "smoke", {**values, **overrides})


class Log(list):
    def __call__(self, message):
        self.append(message)

    def text(self) -> str:
        return "\n".join(self)


def test_nonfinite_loss_stops_keeps_last_good_checkpoint_and_can_be_resumed_skipping(phantom_store, tmp_path):
    with pytest.raises(TrainingError) as info:
        run_training(nan_at(2), tiny_config(phantom_store, tmp_path), log=Log())
    message = str(info.value)
    assert re.match(r"non-finite loss l1=nan at step 2; the last good checkpoint is \S+/checkpoints/ckpt-1;", message)
    assert "\n" not in message
    assert latest_in_state(tmp_path) == "ckpt-1" and not list((tmp_path / "checkpoints").glob("ckpt-2*"))
    assert all(np.all(np.isfinite(v)) for v in checkpoint_values(tmp_path / "checkpoints" / "ckpt-1").values())

    # the same run again with --skip_nonfinite (allowed to differ on resume) goes past the bad batch
    log = Log()
    summary = run_training(nan_at(2), tiny_config(phantom_store, tmp_path, skip_nonfinite=True), log=log)
    assert summary["start_step"] == 1 and summary["step"] == 3 and summary["skipped_steps"] == 1
    assert "non-finite loss l1=nan at step 2; batch skipped" in log.text()
    assert json.loads((tmp_path / "config.json").read_text())["skip_nonfinite"] is True


def test_skip_nonfinite_leaves_no_trace_of_the_bad_step(phantom_store, tmp_path):
    summary = run_training(nan_at(2), tiny_config(phantom_store, tmp_path, skip_nonfinite=True), log=Log())
    assert summary["status"] == "completed" and summary["skipped_steps"] == 1
    ckpt = tmp_path / "checkpoints"
    one, two, three = (checkpoint_values(ckpt / f"ckpt-{k}") for k in (1, 2, 3))
    # after the skipped step 2 everything (weights, Adam moments and iterations, other state) is as after step 1
    assert_same_values(one, two, ignore=("step/",))
    assert any("iteration" in name for name in one) and any("seen" in name for name in one)
    # and training went on with step 3
    changed = [name for name in two if "trainable_variables" in name and not np.array_equal(two[name], three[name])]
    assert changed and all(np.all(np.isfinite(v)) for v in three.values())
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r.get("skipped_steps", 0) for r in records] == [0, 1, 1] and "l1" not in records[1]


def test_unreadable_newest_checkpoint_falls_back_to_the_previous_one(phantom_store, tmp_path):
    """A kill or disk fault during a save: the newest data file is truncated and a half-written next checkpoint
    (not yet in the state file) is left behind. The resume names both, uses the one before, and continues exactly."""
    cfg = lambda: tiny_config(phantom_store, tmp_path, steps=4)
    assert run_training(TinyTrainer, cfg(), log=Log(), max_new_steps=3)["step"] == 3
    ckpt = tmp_path / "checkpoints"
    data = ckpt / "ckpt-3.data-00000-of-00001"
    shutil.copy(ckpt / "ckpt-3.index", ckpt / "orig-3.index")
    os.replace(data, ckpt / "orig-3.data-00000-of-00001")
    shard = ckpt / "orig-3.data-00000-of-00001"
    data.write_bytes(shard.read_bytes()[: os.path.getsize(shard) // 2])
    (ckpt / "ckpt-4.index").write_bytes(b"\x00" * 100)
    os.makedirs(ckpt / "ckpt-4_temp")
    (ckpt / "ckpt-4_temp" / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"\x01" * 64)

    log = Log()
    summary = run_training(TinyTrainer, cfg(), log=log, max_new_steps=1)
    warning = next(line for line in log if line.startswith("warning: skipped unreadable checkpoint"))
    assert "ckpt-4 (" in warning and "ckpt-3 (" in warning and warning.endswith(str(ckpt / "ckpt-2"))
    assert summary["start_step"] == 2 and summary["step"] == 3 and summary["status"] == "paused"
    assert_same_values(checkpoint_values(ckpt / "orig-3"), checkpoint_values(ckpt / "ckpt-3"))
    final = run_training(TinyTrainer, cfg(), log=Log())
    assert final["status"] == "completed" and final["step"] == 4 and latest_in_state(tmp_path) == "ckpt-4"


def test_damaged_checkpoint_state_file_still_resumes(phantom_store, tmp_path):
    cfg = lambda: tiny_config(phantom_store, tmp_path, steps=4)
    run_training(TinyTrainer, cfg(), log=Log(), max_new_steps=2)
    state = tmp_path / "checkpoints" / "checkpoint"
    state.write_bytes(b'model_checkpoint_path: "ckpt-')          # truncated text: TensorFlow would ignore it
    summary = run_training(TinyTrainer, cfg(), log=Log(), max_new_steps=1)
    assert summary["start_step"] == 2 and summary["step"] == 3
    state.write_bytes(b"\xff\xfe\x00 not text")                   # binary junk: TensorFlow would raise
    log = Log()
    summary = run_training(TinyTrainer, cfg(), log=log, max_new_steps=1)
    assert summary["start_step"] == 3 and summary["step"] == 4
    assert any("is unreadable" in line for line in log)
    assert (tmp_path / "checkpoints" / "checkpoint.unreadable").exists()


def test_no_restorable_checkpoint_is_refused_and_nothing_is_deleted(phantom_store, tmp_path):
    run_training(TinyTrainer, tiny_config(phantom_store, tmp_path), log=Log(), max_new_steps=2)
    files = sorted(os.listdir(tmp_path / "checkpoints"))
    for data in (tmp_path / "checkpoints").glob("ckpt-*.data-*"):
        data.write_bytes(data.read_bytes()[:10])
    with pytest.raises(TrainingError) as info:
        run_training(TinyTrainer, tiny_config(phantom_store, tmp_path), log=Log())
    message = str(info.value)
    assert "\n" not in message and "ckpt-2 (" in message and "ckpt-1 (" in message and "--overwrite" in message
    assert sorted(os.listdir(tmp_path / "checkpoints")) == files


# ---- corrupted stores: the validator never raises, and what it accepts the pipeline can read --------------------

WORKER = r"""
import json, sys, traceback
import numpy as np
from cycle_medgan_tf.data import pipeline
from cycle_medgan_tf.data.validate import validate_store
print("ready", flush=True)
for line in sys.stdin:
    path, result = json.loads(line), {}
    try:
        problems = validate_store(path)
        result["problems"] = problems if isinstance(problems, list) else repr(problems)
        if problems == []:
            batches = [x.numpy() for pair in pipeline.train_dataset(path, 64, 1, seed=0).take(2) for x in pair]
            a, b, subjects = pipeline.val_arrays(path, 64)
            arrays = batches + [a, b]
            result["pipeline_ok"] = (len(batches) == 4 and len(subjects) == len(a) > 0
                                     and all(np.all(np.abs(x) <= 1) for x in arrays))
    except BaseException:
        result["error"] = traceback.format_exc()
    print(json.dumps(result), flush=True)
"""
EXAMPLE_TIMEOUT_S = 60


class Worker:
    """The validator and the pipeline in a separate process, so that a hang or a crash in HDF5 fails the test
    instead of freezing it."""

    def __init__(self, log_path):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen([sys.executable, "-c", WORKER], cwd=REPO, env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log, text=True)
        assert self._read(START_TIMEOUT_S, "start") == "ready"

    def _read(self, timeout, what) -> str:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            self.close()
            pytest.fail(f"validator/pipeline hung for {timeout} s on {what}")
        line = self.proc.stdout.readline()
        if not line:
            pytest.fail(f"validator/pipeline process died (exit {self.proc.wait()}) on {what}")
        return line.strip()

    def check(self, path, what) -> dict:
        self.proc.stdin.write(json.dumps(str(path)) + "\n")
        self.proc.stdin.flush()
        return json.loads(self._read(EXAMPLE_TIMEOUT_S, what))

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    w = Worker(tmp_path_factory.mktemp("worker") / "stderr.log")
    yield w
    w.close()


@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    return write_phantom_store(tmp_path_factory.mktemp("fuzz") / "base.h5", n_train=4, n_val=2)


DATASETS = ["train/A/images", "train/B/images", "val/A/images", "val/B/images", "train/A/subjects",
            "train/B/subjects", "val/subjects"]
OBJECTS = DATASETS + ["train", "val", "train/A", "train/B", "val/A", "val/B"]
FILE_ATTRS = ["format", "version", "task", "domain_a", "domain_b", "pixel_spacing_mm"]
WEIRD_VALUES = ["", "abc", b"\x00", -1, 0, 7, 1e300, float("nan"), float("inf"), [1.0, 0.0], [0.0, 1.0, 2.0],
                [float("nan"), 1.0], np.array([b"x", b"y"]), [0.0, 1e-30], [-3e38, 3e38], [-1e300, 1e300], "x" * 10000]
NEW_DTYPES = ["int16", "uint8", "float16", "float64", "complex64", "bool", "S4"]


def _shape_variants(shape):
    n, h, w = (shape + (1, 1, 1))[:3]
    return [(n,), (n, h), (n, h, w, 1), (0, h, w), (n + 1, h, w), (max(n - 1, 1), h, w), (n, 1, 1), (n, h, w + 4),
            (n, 5000, 4), (n, h // 2, w // 2)]


structural = st.one_of(
    st.tuples(st.just("delete"), st.sampled_from(OBJECTS)),
    st.tuples(st.just("delattr"), st.sampled_from(FILE_ATTRS + ["train/A:window", "train/B:window"])),
    st.tuples(st.just("setattr"), st.sampled_from(FILE_ATTRS + ["train/A:window", "train/B:window"]),
              st.sampled_from(range(len(WEIRD_VALUES)))),
    st.tuples(st.just("retype"), st.sampled_from(DATASETS), st.sampled_from(NEW_DTYPES)),
    st.tuples(st.just("reshape"), st.sampled_from(DATASETS), st.integers(0, 9)),
    st.tuples(st.just("nonfinite"), st.sampled_from(DATASETS[:4]), st.sampled_from(["nan", "inf", "-inf"]),
              st.floats(0, 1)),
    st.tuples(st.just("to_group"), st.sampled_from(DATASETS)),
    st.tuples(st.just("scale"), st.sampled_from(DATASETS[:4]), st.sampled_from([0.0, -1.0, 1e-30, 1e30])),
    st.tuples(st.just("subjects"), st.sampled_from(DATASETS[4:]), st.sampled_from(["", "x" * 1000, "\u00e9\u4e2d"])),
)
raw = st.one_of(
    st.tuples(st.just("flip"), st.floats(0, 1), st.booleans(), st.integers(1, 255)),
    st.tuples(st.just("truncate"), st.floats(0, 1)),
)


def _apply_structural(path, op) -> None:
    kind, name = op[0], op[1]
    with h5py.File(path, "r+") as f:
        try:
            if kind == "delete":
                del f[name]
            elif kind in ("delattr", "setattr"):
                obj, attr = (f[name.split(":")[0]], name.split(":")[1]) if ":" in name else (f, name)
                if kind == "delattr":
                    del obj.attrs[attr]
                else:
                    obj.attrs[attr] = WEIRD_VALUES[op[2]]
            elif kind == "scale":
                f[name][...] = f[name][()] * op[2]
            elif kind == "subjects":
                f[name][...] = np.array([op[2]] * f[name].shape[0], dtype=object)
            elif kind == "nonfinite":
                data = f[name][()]
                data.flat[int(op[3] * (data.size - 1))] = float(op[2])
                f[name][...] = data
            else:
                old = f[name]
                shape, dtype = old.shape, old.dtype
                del f[name]
                if kind == "to_group":
                    f.create_group(name)
                elif kind == "retype":
                    f.create_dataset(name, data=np.ones(shape, dtype=op[2]))
                else:
                    new_shape = _shape_variants(shape)[op[2]]
                    f.create_dataset(name, data=np.zeros(new_shape, dtype="f4" if dtype.kind == "f" else "S2"))
        except (AttributeError, KeyError, ValueError, TypeError, OSError):
            pass   # the corruption does not apply to this (already corrupted) file: leave it as it is


def _apply_raw(path, op) -> None:
    size = os.path.getsize(path)
    if op[0] == "truncate":
        with open(path, "r+b") as f:
            f.truncate(int(op[1] * size))
        return
    offset = int(op[1] * ((min(size, 4096) if op[2] else size) - 1))
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        if byte:
            f.seek(offset)
            f.write(bytes([byte[0] ^ op[3]]))


@settings(max_examples=50, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ops=st.one_of(st.tuples(st.lists(structural, min_size=1, max_size=2), st.just([])),
                    st.tuples(st.just([]), st.lists(raw, min_size=1, max_size=3)),
                    st.tuples(st.lists(structural, max_size=1), st.lists(raw, max_size=1))))
def test_corrupted_stores_never_crash_the_validator_or_the_pipeline(worker, small_store, tmp_path, ops):
    structural_ops, raw_ops = ops
    path = tmp_path / "fuzzed.h5"
    shutil.copy(small_store, path)
    for op in structural_ops:
        _apply_structural(path, op)
    for op in raw_ops:
        _apply_raw(path, op)
    what = f"{structural_ops} + {raw_ops}"
    result = worker.check(path, what)
    assert "error" not in result, f"{what}:\n{result['error']}"
    assert isinstance(result["problems"], list) and all(isinstance(p, str) for p in result["problems"]), result
    event("accepted by the validator" if result["problems"] == [] else "refused by the validator")
    if result["problems"] == []:
        assert result["pipeline_ok"], what
    if not (structural_ops or raw_ops):
        assert result["problems"] == []


def test_subject_ids_that_are_not_utf8_are_reported_by_the_validator(small_store, tmp_path):
    path = tmp_path / "s.h5"
    shutil.copy(small_store, path)
    with h5py.File(path, "r+") as f:
        del f["val/subjects"]
        f.create_dataset("val/subjects", data=np.array([b"\xff\xfe", b"ok"]))
    assert validate_store(path) != []


def test_window_too_wide_for_float32_is_reported_by_the_validator(small_store, tmp_path):
    path = tmp_path / "s.h5"
    shutil.copy(small_store, path)
    with h5py.File(path, "r+") as f:
        f["train/B"].attrs["window"] = np.array([-1e300, 1e300])
    assert validate_store(path) != []
