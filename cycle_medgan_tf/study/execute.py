"""One run of the study: train it (``training/jobs.train_run``: resumes an interrupted run directory, reuses a
finished one), evaluate it on its store's paired validation split (``evaluate.validation_metrics``: Table I's four
metrics and the tissue-aware ones, per slice with subject ids) and build the small JSON record of
``study/records.py``. TensorFlow is imported here only, when a run is executed."""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import time

from cycle_medgan_tf.evaluation.curves import CURVE_RECORD_KIND, GRADIENT_RECORD_KIND, metrics_records
from cycle_medgan_tf.study.plan import COPY_BASELINE_TASKS, CURVE_SEEDS, STORE_SEEDS, Run
from cycle_medgan_tf.study.records import (REFERENCE_FORMAT, RUN_FORMAT, VERSION, encode_rows, read_json,
                                           reference_path, write_json)
from cycle_medgan_tf.study.stores import RunStores, run_stores

CONFIG_ESSENTIALS = ("model", "profile", "image_size", "batch_size", "steps", "seed", "lr", "beta1", "beta2",
                     "lr_schedule", "decay_start", "precision", "lambda_cycle", "lambda_cp", "lambda_cs",
                     "lambda_identity", "lambda_structure", "perceptual_layer_weights", "style_layer_weights",
                     "pool_size", "extractor", "disc_layers", "upsample",
                     "unit_gan_weight", "unit_recon_weight", "unit_cycle_weight", "unit_kl_weight",
                     "unit_kl_cycle_weight", "curve_every", "curve_slices", "gradient_every")
NOT_LOSSES = ("step", "time_s", "sec_per_step", "lr", "skipped_steps")


def run_dir(workdir: str, run: Run) -> str:
    return os.path.join(workdir, *run.run_id.split("/"))


def git_commit() -> str:
    """The commit of the checkout this package runs from (``+dirty`` with uncommitted changes), or ``unknown``."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                                timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (commit + ("+dirty" if dirty else "")) if commit else "unknown"


def cpu_model() -> str:
    """The machine's label (``bench.machine.describe_cpu``: model, family / model numbers, cores, ISA)."""
    from cycle_medgan_tf.bench.machine import describe_cpu

    return describe_cpu()["label"]


def read_metrics_log(path: str) -> tuple[list[dict], list[dict], list[dict]]:
    """(loss records, curve records, gradient-norm records) of a ``metrics.jsonl`` (a line cut short by a kill is
    skipped; records of other kinds are left out)."""
    losses, curves, gradients = [], [], []
    if not os.path.isfile(path):
        return losses, curves, gradients
    by_kind = {None: losses, CURVE_RECORD_KIND: curves, GRADIENT_RECORD_KIND: gradients}
    for record in metrics_records(path):
        by_kind.get(record.get("kind"), []).append(record)
    return losses, curves, gradients


def _rounded(record: dict) -> dict:
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in record.items() if k != "kind"}


def _config_essentials(workdir: str, stores: RunStores) -> dict:
    with open(os.path.join(workdir, "config.json")) as f:
        config = json.load(f)
    out = {k: config[k] for k in CONFIG_ESSENTIALS if k in config}
    out.update(data=os.path.basename(stores.data), curve_data=os.path.basename(stores.curves))
    return out


def build_record(run: Run, stores: RunStores, workdir: str, metrics: dict, timing: dict, commit: str) -> dict:
    """The run's JSON (``study/records.py``) from its run directory, its validation metrics and timings;
    ``commit`` is the code that trained it (:func:`git_commit` when the executor started)."""
    losses, curves, gradients = read_metrics_log(os.path.join(workdir, "metrics.jsonl"))
    step_times = [r["sec_per_step"] for r in losses if isinstance(r.get("sec_per_step"), (int, float))]
    return {
        "format": RUN_FORMAT, "version": VERSION, "run": run.record(),
        "config": _config_essentials(workdir, stores),
        "provenance": {"git_commit": commit, "cpu": cpu_model(), "platform": platform.platform(),
                       "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                       "store_seed": STORE_SEEDS[run.store], **timing,
                       "step_s_median": round(statistics.median(step_times), 4) if step_times else None},
        "evaluation": {"split": "val (paired)", "direction": "a2b", "store": os.path.basename(stores.data),
                       "n_slices": len(metrics["subjects"]), "columns": metrics["columns"]},
        "subjects": metrics["subjects"],
        "metrics": encode_rows(metrics["rows"][run.model]),
        "curves": [_rounded(r) for r in curves],
        **({"gradients": [_rounded(r) for r in gradients]} if gradients else {}),
        "final_losses": {k: round(v, 6) for k, v in (losses[-1] if losses else {}).items()
                         if k not in NOT_LOSSES and isinstance(v, (int, float))},
    }


def _write_reference(results: str, run: Run, stores: RunStores, metrics: dict) -> None:
    path = reference_path(results, run.task, run.store, run.data)
    if os.path.exists(path):
        return
    write_json(path, {"format": REFERENCE_FORMAT, "version": VERSION, "task": run.task, "store": run.store,
                      "data": run.data, "store_file": os.path.basename(stores.data), "subjects": metrics["subjects"],
                      "columns": metrics["columns"], "rows": {"Identity": encode_rows(metrics["rows"]["Identity"])}})


def wants_curve_identity(run: Run) -> bool:
    """Whether the learning curves of ``run``'s stage carry Identity's line (the input copied, on the same curve
    slices): where copying the input is a real competitor (``plan.COPY_BASELINE_TASKS``), on the linear window."""
    return run.task in COPY_BASELINE_TASKS and run.data == "linear"


def curve_identity(run: Run, stores: RunStores, slices: int, image_size: int) -> dict:
    """Identity's learning-curve scores on ``run``'s curve store (``training.curves.identity_scores``)."""
    from cycle_medgan_tf.training.curves import identity_scores

    scores = identity_scores(stores.curves, slices, image_size)
    return {"curve_store_seed": CURVE_SEEDS[run.store], "curve_store": os.path.basename(stores.curves),
            "slices": slices, "scores": {k: (round(v, 6) if v is not None else None) for k, v in scores.items()}}


class Executor:
    """Trains and evaluates runs; each store is validated once per process. The git commit is read once, at
    construction: a long sitting's records name the code it imported, even if the checkout moves meanwhile."""

    def __init__(self, workdir: str, results: str, overwrite: bool = False, log=print, keep_checkpoints=False):
        self.workdir, self.results, self.overwrite, self.log = workdir, results, overwrite, log
        self.keep_checkpoints = keep_checkpoints
        self.commit = git_commit()
        self._checked: dict[str, object] = {}

    def recorded(self, run: Run) -> None:
        """Called once ``run``'s JSON is written: its checkpoints (about 1 GB for a CycleGAN-sized run, the
        bulk of a run directory) are removed unless ``keep_checkpoints``; the export, samples and metrics log
        stay, and the JSON is what the study reuses."""
        checkpoints = os.path.join(run_dir(self.workdir, run), "checkpoints")
        if self.keep_checkpoints or not os.path.isdir(checkpoints):
            return
        shutil.rmtree(checkpoints)
        self.log(f"[study] removed {checkpoints} (recorded; --keep_checkpoints keeps them)")

    def complete_reference(self, run: Run) -> None:
        """Add Identity's learning-curve scores to the reference JSON of ``run``'s store where the curves draw it
        (:func:`wants_curve_identity`) and it has none yet (a reference written before they were recorded); a
        store without a reference JSON is left to its first evaluation."""
        from cycle_medgan_tf.config import resolve_config

        path = reference_path(self.results, run.task, run.store, run.data)
        if not wants_curve_identity(run) or not os.path.exists(path):
            return
        reference = read_json(path)
        if "curve_identity" in reference:
            return
        cfg = resolve_config(run.model, run.profile)     # the profile's curve slices and image size
        reference["curve_identity"] = curve_identity(run, run_stores(run, log=self.log), cfg.curve_slices,
                                                     cfg.image_size)
        write_json(path, reference)
        self.log(f"[study] added Identity's learning-curve scores to {path}")

    def _checked_store(self, path: str):
        from cycle_medgan_tf.data.store import check_store

        if path not in self._checked:
            self._checked[path] = check_store(path)
        return self._checked[path]

    def __call__(self, run: Run) -> dict:
        """Train, evaluate and return the record of ``run`` (nothing written but its run directory and, the first
        time a store is evaluated, its reference JSON)."""
        from cycle_medgan_tf.training.jobs import train_run
        from cycle_medgan_tf.evaluate import validation_metrics

        t0 = time.monotonic()
        stores = run_stores(run, log=self.log)
        workdir = run_dir(self.workdir, run)
        overrides = dict(run.overrides(), data=stores.data, curve_data=stores.curves, workdir=workdir)
        self.log(f"[study] training {run.run_id}")
        _, result = train_run(run.model, run.profile, overrides, self._checked_store(stores.data), self.overwrite,
                              log=self.log)
        t_train = time.monotonic()
        # the Identity row on the linear window only (the copied input read through a transfer means nothing)
        need_identity = run.data == "linear" and not os.path.exists(
            reference_path(self.results, run.task, run.store, run.data))
        metrics = validation_metrics(stores.data, {run.model: workdir}, identity=need_identity)
        if need_identity:
            _write_reference(self.results, run, stores, metrics)
        self.complete_reference(run)
        timing = {"wall_time_s": round(time.monotonic() - t0, 2), "train_s": round(t_train - t0, 2),
                  "evaluate_s": round(time.monotonic() - t_train, 2),
                  "steps_this_sitting": result["step"] - result["start_step"]}
        return build_record(run, stores, workdir, metrics, timing, self.commit)
