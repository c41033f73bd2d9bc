"""Shared fixtures: small synthetic stores written through the real writer."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from cycle_medgan_tf.data.store import write_store  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def phantom_slices(n: int, size: int, kind: str, seed: int) -> np.ndarray:
    """Head-like discs: CT in HU (brain, bright rim of bone, air) or PET activity (bright cortex, noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    out = []
    for _ in range(n):
        radius = size * (0.32 + rng.uniform(-0.04, 0.04))
        cy, cx = size / 2 + rng.uniform(-3, 3, size=2)
        d = np.hypot(yy - cy, xx - cx)
        if kind == "CT":
            img = np.select([d < radius, d < radius + 3], [35.0, 1400.0], -1000.0)
            img += rng.normal(0, 4, img.shape)
        else:
            img = np.where(d < radius, 1.0, 0.0) + np.where((d < radius) & (d > radius - 4), 2.5, 0.0)
            img += np.abs(rng.normal(0, 0.15, img.shape))
        out.append(img.astype(np.float32))
    return np.stack(out)


def write_phantom_store(path, size: int = 64, n_train: int = 8, n_val: int = 4, seed: int = 0) -> str:
    """A valid pet_ct-like store with disjoint subjects in train A, train B and val."""
    return write_store(
        path, task="pet_ct", domain_a="PET", domain_b="CT", pixel_spacing_mm=256 / size,
        train_a=phantom_slices(n_train, size, "PET", seed), train_a_subjects=[f"a{i // 4}" for i in range(n_train)],
        train_b=phantom_slices(n_train, size, "CT", seed + 1), train_b_subjects=[f"b{i // 4}" for i in range(n_train)],
        val_a=phantom_slices(n_val, size, "PET", seed + 2), val_b=phantom_slices(n_val, size, "CT", seed + 2),
        val_subjects=[f"v{i // 2}" for i in range(n_val)], window_a=(0.0, 4.0), window_b=(-1000.0, 2000.0),
        overwrite=True)


def synthetic_info(pixel_spacing_mm: float = 8.0):
    """The ``DataInfo`` of a store that is not there: 32x32 slices of one-unit windows, four per domain, for
    building a trainer without data."""
    from cycle_medgan_tf.training.trainer import DataInfo

    return DataInfo(path="<synthetic>", task="t", domain_a="A", domain_b="B", window_a=(-1.0, 1.0),
                    window_b=(-1.0, 1.0), pixel_spacing_mm=pixel_spacing_mm, store_size=32, n_train_a=4, n_train_b=4)


@pytest.fixture(scope="session")
def phantom_store(tmp_path_factory) -> str:
    return write_phantom_store(tmp_path_factory.mktemp("data") / "phantom.h5")


def run_module(module: str, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run ``python -m module args`` in a subprocess and capture its output."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=REPO, env=env)


# ---- scheduling under pytest-xdist (``./run.sh test`` passes --dist=loadgroup --no-loadscope-reorder) ----------
# Modules whose tests share an expensive module-scoped training fixture are xdist groups (GROUPED_MODULES), so
# that one worker sets the fixture up once. Work units are handed out in collection order to whichever worker is
# free, so the slowest modules go first: a long test started last would leave the other worker idle. Order by
# their measured total time (s, 2 workers on a 2-core AMD EPYC, 2026-12-01): main_job 320, training 298,
# distribute 281, reliability 264, inference 172, curves 171, study 94, bench 78; the rest keep pytest's order.
SLOW_MODULES_FIRST = ("test_main_job", "test_training", "test_distribute", "test_reliability", "test_inference",
                      "test_curves", "test_study", "test_bench")
GROUPED_MODULES = ("test_distribute", "test_reliability", "test_curves", "test_evaluate")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(SLOW_MODULES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))       # stable: the rest keep their order
    for item in items:
        if item.path.stem in GROUPED_MODULES:
            item.add_marker(pytest.mark.xdist_group(item.path.stem))


def _module_stem(nodeid: str) -> str:
    return nodeid.split("::", 1)[0].rsplit("/", 1)[-1].removesuffix(".py")


@pytest.hookimpl(optionalhook=True)      # a pytest-xdist hook: pytest without xdist must not refuse it
def pytest_xdist_node_collection_finished(node, ids):
    """Stop before any test runs if a worker's node ids lost their group (pytest 9.2 with pytest-xdist 3.8: the
    groups were split without any error, both workers built the same training fixtures at once and the suite
    took 1,507 s instead of about 1,200)."""
    if node.config.getoption("dist") != "loadgroup":
        return
    lost = [i for i in ids if _module_stem(i) in GROUPED_MODULES and "@" not in i.rsplit("]", 1)[-1]]
    if lost:
        pytest.exit(f"--dist=loadgroup is not grouping {len(lost)} tests (e.g. {lost[0]}) with pytest "
                    f"{pytest.__version__}; install the versions setup.py pins (./run.sh setup)", returncode=4)


@pytest.fixture(autouse=True)
def _float32_policy_afterwards():
    """Reset Keras's global dtype policy after every test: an in-process training sets it (``--precision=auto``
    takes mixed_bfloat16 on CPUs with AVX512-BF16), and the next test in the same worker must not inherit it."""
    yield
    if "keras" in sys.modules:
        sys.modules["keras"].mixed_precision.set_global_policy("float32")
