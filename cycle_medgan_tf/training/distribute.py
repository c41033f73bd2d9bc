"""Data-parallel training through ``tf.distribute``: the one module that knows about replicas and workers.

``--strategy=default`` uses no ``tf.distribute`` at all: :class:`Distribution` without a strategy passes everything
through, so the single-device code path is unchanged. ``mirrored`` is ``tf.distribute.MirroredStrategy`` over all
GPUs, else over all logical CPU devices (``--cpu_devices=N`` splits the CPU into N); ``multi_worker`` is
``tf.distribute.MultiWorkerMirroredStrategy`` configured by the ``TF_CONFIG`` environment variable.

With N replicas and global batch B a run is equivalent to one device with batch B:

* data: every worker builds the full global batch (a pure function of (seed, step)); replica r takes its
  contiguous slice ``[r B/N, (r+1) B/N)``, so the replicas' slices concatenated in replica order are that batch;
* gradients: each replica differentiates its local-mean loss divided by N; Keras's optimizer all-reduces (SUM)
  the gradients, which gives the gradient of the global-batch mean;
* reported losses: the mean over replicas of the local means, i.e. the global-batch mean;
* random draws indexed by sample (latent noise) are drawn for the global batch and sliced per replica;
* cross-replica state (the history pools): :meth:`Distribution.across_replicas` gathers the replicas' tensors in
  replica order, runs the update once on the global batch (same stateless seeds, so the same choices as one
  device) and hands each replica its slice back.
"""

from __future__ import annotations

import contextlib
import json
import os

import tensorflow as tf

from cycle_medgan_tf.config import STRATEGIES


class DistributionError(ValueError):
    """A bad distribution setting (unknown strategy, malformed TF_CONFIG, batch not divisible, ...)."""


def parse_tf_config(raw: str | None) -> dict | None:
    """Check a ``TF_CONFIG`` value; returns it parsed (``None`` when unset). Only ``chief`` and ``worker`` tasks
    are supported."""
    if not raw:
        return None
    try:
        config = json.loads(raw)
    except ValueError as exc:
        raise DistributionError(f"TF_CONFIG is not valid JSON ({exc})") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not cluster:
        raise DistributionError('TF_CONFIG needs a "cluster" object, e.g. {"worker": ["host1:port", "host2:port"]}')
    for kind, addresses in cluster.items():
        if kind not in ("chief", "worker"):
            raise DistributionError(f"TF_CONFIG cluster has a {kind!r} job; multi_worker supports only chief and "
                                    "worker")
        if (not isinstance(addresses, list) or not addresses
                or not all(isinstance(a, str) and a.rpartition(":")[2].isdigit() for a in addresses)):
            raise DistributionError(f"TF_CONFIG cluster {kind!r} must be a non-empty list of \"host:port\" strings")
    if len(cluster.get("chief", [])) > 1:
        raise DistributionError("TF_CONFIG cluster may have at most one chief")
    task = config.get("task")
    kind = task.get("type") if isinstance(task, dict) else None
    index = task.get("index") if isinstance(task, dict) else None
    if kind not in cluster or not isinstance(index, int) or not 0 <= index < len(cluster[kind]):
        raise DistributionError('TF_CONFIG needs a "task" {"type": ..., "index": ...} naming a task of its cluster')
    return config


def configure_cpu_devices(count: int) -> None:
    """Split the CPU into ``count`` logical devices (0 or 1: leave it alone). Must run before TensorFlow
    initialises its devices; raises :class:`DistributionError` if it is too late."""
    if count <= 1:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is not None and len(current) == count:
        return
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError:
        raise DistributionError(f"cannot split the CPU into {count} devices: TensorFlow is already initialised "
                                "in this process") from None


def make_strategy(name: str, cpu_devices: int = 0):
    """The ``tf.distribute`` strategy for ``name`` (``None`` for ``default``); ``cpu_devices`` splits the CPU for
    ``mirrored`` (ignored otherwise). Call it before any other TensorFlow work in the process: logical devices and
    MultiWorkerMirroredStrategy must be set up first."""
    if name not in STRATEGIES:
        raise DistributionError(f"unknown strategy {name!r}; choose from {', '.join(STRATEGIES)}")
    if name == "default":
        return None
    if name == "mirrored":
        configure_cpu_devices(cpu_devices)
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy(devices=[d.name for d in devices])
    parse_tf_config(os.environ.get("TF_CONFIG"))
    return tf.distribute.MultiWorkerMirroredStrategy()


class Distribution:
    """What the trainers and the run loop need from a strategy. ``Distribution(None)`` is the single-device path:
    every method is a pass-through and adds no operation."""

    def __init__(self, strategy=None):
        self.strategy = strategy
        self.num_replicas = strategy.num_replicas_in_sync if strategy is not None else 1
        resolver = getattr(strategy, "cluster_resolver", None)
        spec = resolver.cluster_spec().as_dict() if resolver is not None else {}
        self.num_workers = max(sum(len(v) for k, v in spec.items() if k in ("chief", "worker")), 1)
        self.task = f"{resolver.task_type}:{resolver.task_id}" if resolver is not None and spec else ""
        self.is_chief = strategy is None or bool(strategy.extended.should_checkpoint)

    def __repr__(self) -> str:
        if self.strategy is None:
            return "one device"
        multi = isinstance(self.strategy, tf.distribute.MultiWorkerMirroredStrategy)
        kind = "MultiWorkerMirroredStrategy" if multi else type(self.strategy).__name__
        text = f"{kind}, {self.num_replicas} replicas"
        return text + (f" on {self.num_workers} workers (this one {self.task})" if self.num_workers > 1 else "")

    def check(self, global_batch: int, jit: bool) -> None:
        """Refuse settings this distribution cannot run."""
        if global_batch % self.num_replicas:
            raise DistributionError(f"batch_size {global_batch} is the global batch and must be divisible by the "
                                    f"number of replicas ({self.num_replicas})")
        if jit and self.strategy is not None:
            raise DistributionError("--jit is supported only with --strategy=default")

    def scope(self):
        """Context in which models, optimisers and pools are built."""
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def compile_step(self, step_fn, jit: bool = False):
        """``step_fn(a, b, step) -> {name: local-mean loss}`` compiled; under a strategy it runs on every replica
        and the returned losses are global-batch means."""
        if self.strategy is None:
            return tf.function(step_fn, jit_compile=jit, reduce_retracing=True)
        strategy = self.strategy

        def distributed_step(a, b, step):
            losses = strategy.run(step_fn, args=(a, b, step))
            return {k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None) for k, v in losses.items()}

        return tf.function(distributed_step, reduce_retracing=True)

    def scale_loss(self, loss):
        """A replica's contribution to the gradient: its local-mean loss / number of replicas (gradients are summed
        across replicas)."""
        return loss if self.num_replicas == 1 else loss / self.num_replicas

    def distribute_dataset(self, make_dataset, global_batch: int):
        """``make_dataset()`` yields global batches ``(a, b)``; under a strategy every worker builds it and each
        replica gets its contiguous slice, in replica order."""
        if self.strategy is None:
            return make_dataset()
        replicas, per_replica = self.num_replicas, global_batch // self.num_replicas

        def dataset_fn(context: tf.distribute.InputContext):
            local = context.num_replicas_in_sync // context.num_input_pipelines
            first = context.input_pipeline_id * local

            def this_workers_slices(*batch):
                return tuple(tf.reshape(x, (replicas, per_replica) + tuple(x.shape[1:]))[first:first + local]
                             for x in batch)

            return make_dataset().map(this_workers_slices).unbatch()   # consecutive elements go to consecutive replicas

        return self.strategy.distribute_datasets_from_function(dataset_fn)

    def local_batch(self, value):
        """This worker's part of a distributed batch as one tensor (the whole batch on a single worker)."""
        if self.strategy is None:
            return value
        parts = self.strategy.experimental_local_results(value)
        return parts[0] if len(parts) == 1 else tf.concat(parts, axis=0)

    def replica_slice(self, value):
        """In a replica: this replica's contiguous slice of a tensor computed for the global batch."""
        if self.strategy is None:
            return value
        size = tf.shape(value)[0] // self.num_replicas
        index = tf.cast(tf.distribute.get_replica_context().replica_id_in_sync_group, tf.int32)
        return value[index * size:(index + 1) * size]

    def replica_random(self, draw, local_shape):
        """``draw(shape)`` (a stateless random op) made for the global batch and sliced to this replica: the same
        numbers a single device draws for its batch."""
        if self.strategy is None:
            return draw(local_shape)
        local_shape = tf.convert_to_tensor(local_shape)
        return self.replica_slice(draw(tf.concat([local_shape[:1] * self.num_replicas, local_shape[1:]], axis=0)))

    def across_replicas(self, fn, *tensors):
        """Run ``fn`` once on the global batch: ``tensors`` of all replicas gathered in replica order, ``fn`` called
        once in cross-replica context (so its variable updates happen once, on every copy); each replica gets back
        its slice of each output."""
        if self.strategy is None:
            return fn(*tensors)

        def merged(strategy, *per_replica):
            return fn(*[strategy.gather(t, axis=0) for t in per_replica])

        outputs = tf.distribute.get_replica_context().merge_call(merged, args=tensors)
        return tf.nest.map_structure(self.replica_slice, outputs)

    def any_worker(self, flag: bool) -> bool:
        """Whether ``flag`` is set on any worker (a collective on multi-worker runs, so call it on all of them)."""
        if self.num_workers <= 1:
            return flag
        total = self.strategy.reduce(tf.distribute.ReduceOp.SUM, tf.constant(float(flag)), axis=None)
        return float(total) > 0

    def chief_value(self, value: float) -> float:
        """The chief's ``value``, on every worker (a collective on multi-worker runs)."""
        if self.num_workers <= 1:
            return value
        mine = tf.constant(float(value) if self.is_chief else 0.0, tf.float64)
        return float(self.strategy.reduce(tf.distribute.ReduceOp.SUM, mine, axis=None))

    def barrier(self) -> None:
        """Wait until every worker gets here (multi-worker runs only)."""
        self.any_worker(False)
