"""Where each run of the study trains, evaluates and draws its learning curves: the cached default stores
(``training/jobs.default_data``), and the guard that keeps the tuning stages off the test store."""

from __future__ import annotations

import os
from dataclasses import dataclass

from cycle_medgan_tf.config import resolve_config
from cycle_medgan_tf.study.plan import (CURVE_SEEDS, DATA_VARIANTS, STAGE_STORE, STORE_SEEDS, TUNING_STAGES,
                                        PlanError, Run)


@dataclass(frozen=True)
class RunStores:
    """The store a run trains on and is evaluated on (its paired validation split), and its curve store."""

    data: str
    curves: str


def image_size(profile: str) -> int:
    return resolve_config("cyclegan", profile).image_size


def store_path(task: str, role: str, data: str, profile: str, create: bool = True, seed: int | None = None,
               log=None) -> str:
    """The default store of ``role`` ("test" or "tuning"; or an explicit generator ``seed``) in data variant
    ``data``; generated into the cache first when ``create`` and missing."""
    from cycle_medgan_tf.training.jobs import default_data

    kwargs = {"log": log} if log is not None else {}
    return default_data(task, profile, image_size(profile), seed=STORE_SEEDS[role] if seed is None else seed,
                        transfer_b=DATA_VARIANTS[data], create=create, **kwargs)


def held_out_store_path(task: str, data: str, profile: str) -> str:
    """Where the test store of this variant is (or would be); never generated here."""
    return store_path(task, "test", data, profile, create=False)


def run_stores(run: Run, create: bool = True, log=None) -> RunStores:
    """The stores of ``run`` (generated when missing), checked by :func:`check_separation`."""
    stores = RunStores(
        data=store_path(run.task, run.store, run.data, run.profile, create, log=log),
        curves=store_path(run.task, run.store, run.data, run.profile, create, seed=CURVE_SEEDS[run.store], log=log))
    check_separation(run, stores)
    return stores


def _same(a: str, b: str) -> bool:
    if os.path.exists(a) and os.path.exists(b):
        return os.path.samefile(a, b)
    return os.path.abspath(a) == os.path.abspath(b)


def check_separation(run: Run, stores: RunStores) -> None:
    """Refuse a tuning-stage run whose training, evaluation or curve store is a test store (of any variant)."""
    if run.store != STAGE_STORE[run.stage]:
        raise PlanError(f"{run.run_id}: the {run.stage} stage uses the {STAGE_STORE[run.stage]} store only")
    if run.stage not in TUNING_STAGES:
        return
    tests = [held_out_store_path(run.task, data, run.profile) for data in DATA_VARIANTS]
    for path in (stores.data, stores.curves):
        if any(_same(path, test) for test in tests):
            raise PlanError(f"{run.run_id}: {path} is a test store; the {run.stage} stage chooses on the tuning "
                            "store only")
