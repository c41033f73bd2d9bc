"""``--precision=auto``: the rule on given timings, the record in config.json, resumes that keep their precision,
explicit precisions that skip the probe, and one real probe on this machine."""

from __future__ import annotations

import dataclasses
import json

import pytest

from cycle_medgan_tf.config import BF16_MIN_SPEEDUP, PRECISIONS, resolve_config
from cycle_medgan_tf.catalogue import trainer_class
from cycle_medgan_tf.training import precision
from cycle_medgan_tf.training.precision import choose_precision, resolve_precision
from cycle_medgan_tf.training.trainer import RUN_CONTROL_FIELDS, run_training
from tests.conftest import run_module


SLOW_BF16 = dict(float32_ms=30.0, bfloat16_ms=90.0)     # probe timings that rule bfloat16 out
FAST_BF16 = dict(float32_ms=30.0, bfloat16_ms=10.0)     # ... and in


def _cfg(store="/data.h5", workdir="/run", **overrides):
    return resolve_config("cyclegan", "smoke", dict(data=store, workdir=str(workdir), **overrides))


@pytest.mark.parametrize("f32,bf16,expected", [
    (10.0, 5.0, "mixed_bfloat16"), (12.0, 10.0, "mixed_bfloat16"), (11.9, 10.0, "float32"),
    (10.0, 10.0, "float32"), (10.0, 160.0, "float32"), (10.0, None, "float32")])
def test_auto_takes_bfloat16_only_when_clearly_faster(f32, bf16, expected):
    assert BF16_MIN_SPEEDUP == 1.2
    assert choose_precision(dict(float32_ms=f32, bfloat16_ms=bf16), gpu=False)[0] == expected


def test_a_gpu_keeps_float32_without_a_probe(monkeypatch):
    monkeypatch.setattr(precision, "time_probe", lambda *a: pytest.fail("probed with a GPU"))
    cfg = _cfg(precision="auto")
    cfg, _ = resolve_precision(cfg, gpu=True)
    assert cfg.precision == "float32" and cfg.precision_probe["rule"].startswith("GPU")


def test_auto_resolves_and_records_the_timings():
    cfg = _cfg(precision="auto")
    cfg, message = resolve_precision(cfg, timings=dict(float32_ms=30.0, bfloat16_ms=20.0, rounds=3), gpu=False)
    assert cfg.precision == "mixed_bfloat16" and "mixed_bfloat16" in message
    record = cfg.precision_probe
    assert record["requested"] == "auto" and record["choice"] == "mixed_bfloat16" and record["bf16_speedup"] == 1.5
    assert record["float32_ms"] == 30.0 and record["bfloat16_ms"] == 20.0 and record["threshold"] == BF16_MIN_SPEEDUP
    assert json.loads(cfg.to_json())["precision_probe"] == record


def test_explicit_precision_skips_the_probe(monkeypatch):
    monkeypatch.setattr(precision, "time_probe", lambda *a: pytest.fail("probed an explicit precision"))
    for name in PRECISIONS:
        cfg = _cfg(precision=name)
        cfg, _ = resolve_precision(cfg, gpu=False)
        assert cfg.precision == name and cfg.precision_probe == {}


def test_a_resume_keeps_its_precision_and_a_changed_run_measures_again(monkeypatch):
    first = _cfg(precision="auto")
    first, _ = resolve_precision(first, timings=dict(float32_ms=30.0, bfloat16_ms=20.0), gpu=False)
    previous = json.loads(first.to_json())
    monkeypatch.setattr(precision, "time_probe", lambda *a: pytest.fail("a resume was measured again"))
    again = _cfg(precision="auto", strategy="mirrored")          # run control may change on a resume
    again, _ = resolve_precision(again, previous, RUN_CONTROL_FIELDS, timings=SLOW_BF16, gpu=False)
    assert again.precision == "mixed_bfloat16" and again.precision_probe == first.precision_probe
    explicit = _cfg(precision="mixed_bfloat16")                   # the same policy named explicitly: same record
    explicit, _ = resolve_precision(explicit, previous, RUN_CONTROL_FIELDS, gpu=False)
    assert explicit.precision_probe == first.precision_probe
    changed = _cfg(precision="auto", steps=5)                    # not a resume: measured afresh
    changed, _ = resolve_precision(changed, previous, RUN_CONTROL_FIELDS, timings=SLOW_BF16, gpu=False)
    assert changed.precision == "float32"
    older = {k: v for k, v in json.loads(_cfg(precision="float32").to_json()).items() if k != "precision_probe"}
    kept = _cfg(precision="auto")                                # a run from before auto existed keeps its float32
    kept, _ = resolve_precision(kept, older, RUN_CONTROL_FIELDS, timings=FAST_BF16, gpu=False)
    assert kept.precision == "float32" and kept.precision_probe["rule"].startswith("kept")


def test_a_real_probe_records_its_numbers_and_a_resume_keeps_the_choice(phantom_store, tmp_path, monkeypatch):
    # a paused run (a checkpoint, no export) at 32x32: the probe and its record are what is tested
    cfg = _cfg(phantom_store, tmp_path / "run", precision="auto", steps=3, image_size=32)
    logs = []
    assert run_training(trainer_class("cyclegan"), cfg, log=logs.append, max_new_steps=1)["status"] == "paused"
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    record = config["precision_probe"]
    assert config["precision"] in PRECISIONS and record["choice"] == config["precision"]
    assert record["float32_ms"] > 0 and record["rounds"] >= 1 and record["probe_s"] < 15
    if record.get("bfloat16_ms"):
        assert record["bf16_speedup"] == pytest.approx(record["float32_ms"] / record["bfloat16_ms"], rel=1e-2)
    assert choose_precision(record, gpu=False)[0] == config["precision"]
    assert any("precision" in line and "auto" in line for line in logs)
    print(json.dumps(record))            # the machine's numbers, for the record (pytest -s)

    monkeypatch.setattr(precision, "time_probe", lambda *a: pytest.fail("the resume probed again"))
    resumed = _cfg(phantom_store, tmp_path / "run", precision="auto", steps=3, image_size=32)
    resumed = dataclasses.replace(resumed, workdir=str(tmp_path / "run"), data=cfg.data)   # absolute, as run_training
    resumed, _ = resolve_precision(resumed, precision.previous_config(resumed.workdir), RUN_CONTROL_FIELDS)
    assert resumed.precision == config["precision"] and json.loads(resumed.to_json()) == config


def test_precision_flag_accepts_auto_and_refuses_others(phantom_store, tmp_path):
    bad = run_module("cycle_medgan_tf.train", "--model=cyclegan", "--profile=smoke", f"--data={phantom_store}",
                     f"--workdir={tmp_path / 'r'}", "--precision=half")
    assert bad.returncode == 2 and "precision must be one of auto, float32" in bad.stderr
