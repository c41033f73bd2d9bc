"""Distributed training (docs/DISTRIBUTED.md): CycleGAN under ``--strategy=mirrored`` on two logical CPU devices and
under ``--strategy=multi_worker`` with two local worker processes trains like one device with the same global
batch, history pools included; checkpoints restore across replica counts in both directions; only the chief of a
multi-worker run writes the work directory; UNIT trains under mirrored; bad settings are refused in one line.

Logical devices and MultiWorkerMirroredStrategy must be set up before TensorFlow initialises, so every run is a
subprocess. Independent runs are started together: most of a short run is single-threaded graph tracing, so on two
cores this roughly halves the time of the file.

Why lr = 1e-8 in the comparisons: at the smoke learning rate (2e-4) two runs that differ only in float rounding
(one device vs two replicas, or oneDNN on vs off on one device) drift apart within three steps, because Adam turns
rounding-level gradient differences into full learning-rate steps and the GAN amplifies them (measured mirrored vs
one device: losses equal to 2e-6 at step 1, 6e-4 at step 2, 7e-2 at step 3; weights 1.2e-3 = 6 lr apart). With
lr = 1e-8 the models stay where they started, every step's global-batch gradient is accumulated in the Adam moments,
and those are compared instead. A missing all-reduce, a wrong loss scale, a replica reading the wrong slice or pool
choices made per replica would each show as O(1) differences there or in the pools.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from cycle_medgan_tf.training.distribute import DistributionError, parse_tf_config
from tests.conftest import REPO


TRAIN = "cycle_medgan_tf.train"
TIMEOUT_S = 480          # per subprocess: a hang fails the test instead of blocking CI

COMMON = ("--model=cyclegan", "--profile=smoke", "--batch_size=2", "--pool_size=2", "--lr=1e-8", "--decay_start=1",
          "--checkpoint_every=100", "--image_every=100", "--deterministic")
MIRRORED = ("--strategy=mirrored", "--cpu_devices=2")

# Tolerances for two replicas (mirrored, or two workers) vs one device. Largest differences measured on this machine
# (2 CPU cores, TF 2.21), after 2 and after 4 steps: weights 4.5e-8; Adam moments 1.5e-2 (relative L2 error per
# variable, largest over the 324 moment tensors; pure rounding, one device with oneDNN on vs off, gives 7.1e-3 after
# 3 steps); pools 1.0e-5; losses 5e-7 relative. The bugs this guards against give O(1) differences.
WEIGHTS_ATOL = 1e-6
MOMENTS_RTOL = 1e-1
POOL_ATOL = 1e-4
LOSS_RTOL = 1e-4


class Run:
    """``python -m cycle_medgan_tf.train ARGS`` started now, output to files; :meth:`result` waits for it."""

    started: list = []

    def __init__(self, name: str, logs, *args: str, env: dict | None = None):
        self.name, self.args = name, args
        Run.started.append(self)
        self.out, self.err = logs / f"{name}.out", logs / f"{name}.err"
        self.deadline = time.monotonic() + TIMEOUT_S
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", TRAIN, *args], cwd=REPO, stdout=out, stderr=err,
                                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **(env or {})))

    def result(self) -> subprocess.CompletedProcess:
        try:
            code = self.proc.wait(timeout=max(self.deadline - time.monotonic(), 1))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"{self.name} timed out after {TIMEOUT_S} s")
        return subprocess.CompletedProcess(self.args, code, self.out.read_text(), self.err.read_text())


def summary(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def state(prefix) -> dict:
    """Every variable of a checkpoint except the save counter."""
    reader = tf.train.load_checkpoint(str(prefix))
    skip = ("_CHECKPOINTABLE_OBJECT_GRAPH", "save_counter/.ATTRIBUTES/VARIABLE_VALUE")
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map() if name not in skip}


def differences(a: dict, b: dict) -> dict:
    """Largest differences by kind: model weights and pools (absolute), Adam moments (relative L2 per variable);
    counters must be equal."""
    assert a.keys() == b.keys() and len(a) > 300
    out = {"weights": 0.0, "moments": 0.0, "pools": 0.0}
    for name, x in a.items():
        y = b[name]
        if name.startswith("pool_") and "/images/" in name:
            kind = "pools"
        elif "_trainable_variables/" in name:
            kind = "weights"
        elif "/_variables/" in name:
            kind = "moments"
        else:
            assert np.array_equal(x, y), name           # step, iteration counters, pool fill counts
            continue
        x, y = x.astype(np.float64), y.astype(np.float64)
        if kind == "moments":
            diff = np.linalg.norm(x - y) / max(np.linalg.norm(y), 1e-30)
        else:
            diff = float(np.max(np.abs(x - y)))
        out[kind] = max(out[kind], float(diff))
    return out


def assert_equivalent(a: dict, b: dict) -> None:
    d = differences(a, b)
    print(f"largest differences: {d}")
    assert d["weights"] <= WEIGHTS_ATOL and d["moments"] <= MOMENTS_RTOL and d["pools"] <= POOL_ATOL, d


def losses(workdir) -> dict:
    return {r["step"]: r for r in map(json.loads, (workdir / "metrics.jsonl").read_text().splitlines())}


@pytest.fixture(scope="module")
def runs(phantom_store, tmp_path_factory):
    """CycleGAN, global batch 2, 4 steps: ``single`` (one device) and ``mirrored`` (two logical CPU devices) pause at
    step 2; then ``single`` is resumed by two worker processes (multi_worker, one replica each) and ``mirrored`` by
    one device, both to step 4. ``unit`` trains UNIT 2 steps under mirrored."""
    root = tmp_path_factory.mktemp("distribute")
    data = f"--data={phantom_store}"
    cyclegan = (*COMMON, data, "--steps=4")
    single = Run("single", root, *cyclegan, "--max_steps_this_run=2", f"--workdir={root / 'single'}")
    mirrored = Run("mirrored", root, *cyclegan, "--max_steps_this_run=2", f"--workdir={root / 'mirrored'}", *MIRRORED)
    unit = Run("unit", root, "--model=unit", "--profile=smoke", "--batch_size=2", "--steps=2", "--checkpoint_every=100",
               "--image_every=100", data, f"--workdir={root / 'unit'}", *MIRRORED)
    out = {"root": root, "single": single.result()}
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    workers = []
    for index in range(2):
        scratch = root / f"tmp_worker{index}"
        scratch.mkdir()
        env = {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
               "TMPDIR": str(scratch)}
        workers.append(Run(f"worker{index}", root, *cyclegan, "--strategy=multi_worker", f"--workdir={root / 'single'}",
                           env=env))
    out["mirrored"] = mirrored.result()
    resumed = Run("mirrored_resumed", root, *cyclegan, f"--workdir={root / 'mirrored'}")
    out["workers"] = [w.result() for w in workers]
    out["mirrored_resumed"] = resumed.result()
    out["unit"] = unit.result()
    yield out
    shutil.rmtree(root, ignore_errors=True)       # the CycleGAN checkpoints are 340 MB each


@pytest.fixture(autouse=True, scope="module")
def _no_stray_processes():
    """Kill runs still going when a test fails early (e.g. on a timeout)."""
    yield
    for run in Run.started:
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.wait()


def test_mirrored_two_replicas_match_one_device(runs):
    """Two logical CPU devices, 2 steps with global batch 2: the same losses, weights, Adam moments (so Keras's
    optimizer all-reduces the replicas' gradients, and they are scaled by the global batch) and pools."""
    root = runs["root"]
    for name in ("single", "mirrored"):
        s = summary(runs[name])
        assert s["status"] == "paused" and s["step"] == 2
    assert "under MirroredStrategy, 2 replicas" in runs["mirrored"].stderr
    assert_equivalent(state(root / "mirrored/checkpoints/ckpt-2"), state(root / "single/checkpoints/ckpt-2"))
    one, two = losses(root / "single"), losses(root / "mirrored")
    for step in (1, 2):
        for key in ("g_adv_a2b", "g_adv_b2a", "cycle", "g_total", "d_a", "d_b", "d_total"):
            assert math.isclose(two[step][key], one[step][key], rel_tol=LOSS_RTOL), (step, key)


def test_history_pool_makes_the_same_choices_under_two_replicas(runs):
    """Pool size 2 is full after step 1; at step 2 it swaps images (the stateless coin flips for that step are
    checked here), and the pools of both runs still hold the same images in the same slots."""
    coins = [tf.random.stateless_uniform([2], seed=tf.constant([salt, 1], tf.int64)).numpy() for salt in (1, 3)]
    assert any((c > 0.5).any() for c in coins)          # the random-swap branch runs at step 2 (0-based step 1)
    one, two = (state(runs["root"] / f"{name}/checkpoints/ckpt-2") for name in ("single", "mirrored"))
    for pool in ("pool_a", "pool_b"):
        assert one[f"{pool}/count/.ATTRIBUTES/VARIABLE_VALUE"] == two[f"{pool}/count/.ATTRIBUTES/VARIABLE_VALUE"] == 2
        images = f"{pool}/images/.ATTRIBUTES/VARIABLE_VALUE"
        assert np.abs(one[images]).max() > 0.1
        np.testing.assert_allclose(two[images], one[images], atol=POOL_ATOL)


def test_checkpoints_restore_across_replica_counts(runs):
    """Paused at step 2 under one replica count and resumed under the other (two replicas -> one device, and one
    device -> two workers): both continue from step 2 and end in equivalent states at step 4."""
    root = runs["root"]
    for result in (runs["mirrored_resumed"], runs["workers"][0]):
        s = summary(result)
        assert s["start_step"] == 2 and s["step"] == 4 and s["status"] == "completed"
        assert "resuming from step 2" in result.stderr
    assert "resuming from step 2" in runs["workers"][1].stderr       # the other worker restores the chief's files
    assert "under Mirrored" not in runs["mirrored_resumed"].stderr
    for name in ("single", "mirrored"):
        assert sorted(losses(root / name)) == [1, 2, 3, 4]
        assert (root / name / "export" / "manifest.json").is_file()
    assert_equivalent(state(root / "single/checkpoints/ckpt-4"), state(root / "mirrored/checkpoints/ckpt-4"))


def test_multi_worker_two_processes_on_localhost(runs):
    """MultiWorkerMirroredStrategy (TF_CONFIG, two workers on 127.0.0.1, one replica each): both exit 0; only the
    chief writes the work directory and its one checkpoint directory; the other worker's scratch directories
    (checkpoint and export copies in its TMPDIR) are gone."""
    root = runs["root"]
    chief, other = (summary(r) for r in runs["workers"])
    assert chief["status"] == other["status"] == "completed" and chief["step"] == other["step"] == 4
    assert chief["export"] == str(root / "single" / "export") and other["export"] is None
    assert ("under MultiWorkerMirroredStrategy, 2 replicas on 2 workers (this one worker:1)"
            in runs["workers"][1].stderr)
    assert sorted(os.listdir(root / "single")) == ["checkpoints", "config.json", "export", "metrics.jsonl", "samples",
                                                   "tb"]
    assert sorted(os.listdir(root / "single" / "checkpoints")) == [
        "checkpoint", "ckpt-2.data-00000-of-00001", "ckpt-2.index", "ckpt-4.data-00000-of-00001", "ckpt-4.index"]
    assert [os.listdir(root / f"tmp_worker{i}") for i in range(2)] == [[], []]


def test_unit_trains_under_mirrored(runs):
    """UNIT (no pool; its latent noise is drawn for the global batch and sliced per replica) runs under two
    replicas. It is not bitwise reproducible even on one device (docs/RELIABILITY.md), so only finiteness is
    checked."""
    s = summary(runs["unit"])
    assert s["status"] == "completed" and s["step"] == 2
    records = losses(runs["root"] / "unit")
    assert sorted(records) == [1, 2]
    assert all(math.isfinite(v) for r in records.values() for k, v in r.items() if k not in ("step",))
    assert (runs["root"] / "unit" / "export" / "a2b").is_dir()


def test_bad_distribution_settings_are_refused_in_one_line(phantom_store, tmp_path):
    base = ("--model=cyclegan", "--profile=smoke", f"--data={phantom_store}")
    cases = {
        "unknown strategy 'bogus'; choose from default, mirrored, multi_worker": (("--strategy=bogus",), {}),
        "batch_size 3 is the global batch and must be divisible by the number of replicas (2)":
            (("--batch_size=3", *MIRRORED), {}),
        "TF_CONFIG is not valid JSON": (("--strategy=multi_worker",), {"TF_CONFIG": "{not json"}),
        "cpu_devices must be >= 0, got -1": (("--cpu_devices=-1",), {}),
    }
    started = [(message, Run(f"bad{i}", tmp_path, *base, f"--workdir={tmp_path / f'run{i}'}", *args, env=env))
               for i, (message, (args, env)) in enumerate(cases.items())]
    for i, (message, run) in enumerate(started):
        result = run.result()
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and message in errors[0], result.stderr
        assert not (tmp_path / f"run{i}").exists()


@pytest.mark.parametrize("raw, message", [
    ('{"cluster": {"worker": ["a:1"]}}', '"task"'),
    ('{"cluster": {"ps": ["a:1"]}, "task": {"type": "ps", "index": 0}}', "only chief and worker"),
    ('{"cluster": {"worker": ["a"]}, "task": {"type": "worker", "index": 0}}', "host:port"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}', '"task"'),
    ("[1]", '"cluster"'),
])
def test_malformed_tf_config_is_refused(raw, message):
    with pytest.raises(DistributionError, match=message):
        parse_tf_config(raw)
    assert parse_tf_config('{"cluster": {"worker": ["h:1", "h:2"]}, "task": {"type": "worker", "index": 1}}')
    assert parse_tf_config("") is None


def test_strategy_settings_may_change_on_resume(phantom_store, tmp_path):
    """``strategy`` and ``cpu_devices`` are run control, not part of the run's identity."""
    from cycle_medgan_tf.config import resolve_config
    from cycle_medgan_tf.training.trainer import prepare_workdir

    def cfg(**overrides):
        return resolve_config("cyclegan", "smoke", dict(data=phantom_store, workdir=str(tmp_path), **overrides))

    prepare_workdir(cfg(strategy="mirrored", cpu_devices=2), overwrite=False)
    prepare_workdir(cfg(), overwrite=False)
    assert json.loads((tmp_path / "config.json").read_text())["strategy"] == "default"
