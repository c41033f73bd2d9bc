"""The main job end to end: ``./run.sh pet_ct --profile=smoke`` sets up, generates data, trains the three models,
evaluates them and writes every output file; later runs add a seed and reuse the finished stages."""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np

from tests.conftest import REPO


def _run(tmp_path, *args):
    env = dict(os.environ, CYCLE_MEDGAN_CACHE=str(tmp_path / "cache"), TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("VIRTUAL_ENV", None)
    return subprocess.run([os.path.join(REPO, "run.sh"), "pet_ct", "--profile=smoke", f"--results={tmp_path / 'res'}",
                           *args], capture_output=True, text=True, timeout=1500, cwd=REPO, env=env)


MODELS = ("unit", "cyclegan", "cycle_medgan")
ROWS = {"UNIT", "CycleGAN", "Cycle-MedGAN", "Identity", "Look-up (best training slice)"}


def test_run_sh_pet_ct_smoke_writes_every_output_then_adds_a_seed_and_reuses_runs(tmp_path):
    first = _run(tmp_path)                                          # the smoke default: seed 0
    assert first.returncode == 0, first.stderr[-3000:]
    out = tmp_path / "res" / "pet_ct"
    for name in ("table1.md", "table1.csv", "table1.tex", "table1.json", "fig3.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert (out / "details.md").is_file() and (out / "summary.json").is_file()
    assert (out / "curves.png").stat().st_size > 5000                 # learning curves on the tuning store
    for model in MODELS:
        run = out / "runs" / model / "seed_0"
        assert (run / "export" / "manifest.json").is_file()
        config = json.loads((run / "config.json").read_text())
        assert config["seed"] == 0 and "_seed1_" in config["curve_data"]
        curve = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if '"curve"' in line]
        assert [c["step"] for c in curve] == [2, 4] and all(np.isfinite(c["a2b_ssim_brain"]) for c in curve)
    table = json.loads((out / "table1.json").read_text())
    assert set(table["models"]) == ROWS and "ssim_brain" in table["columns"]
    assert "| Cycle-MedGAN |" in first.stdout and "Results:" in first.stdout and "minus each other row" in first.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["profile"] == "smoke" and summary["wall_time_s"] > 0 and summary["seeds"] == [0]
    assert all(summary["stages"][f"train_{m}_seed0_steps_run"] == 4 for m in MODELS)

    second = _run(tmp_path, "--models=cyclegan", "--seeds=0,1")     # seed 0 reused, seed 1 trained
    assert second.returncode == 0, second.stderr[-3000:]
    for folder in (out / "seeds" / "seed_0", out / "seeds" / "seed_1"):
        for name in ("table1.md", "table1.csv", "table1.tex", "table1.json", "fig3.png"):
            assert (folder / name).is_file() and (folder / name).stat().st_size > 0, (folder, name)
    stages = json.loads((out / "summary.json").read_text())["stages"]
    assert stages["train_cyclegan_seed0_steps_run"] == 0 and stages["train_cyclegan_seed1_steps_run"] == 4
    assert json.loads((out / "runs" / "cyclegan" / "seed_1" / "config.json").read_text())["seed"] == 1
    table = json.loads((out / "table1.json").read_text())
    assert table["spread"] == "seeds" and table["seeds"]["CycleGAN"] == ["seed_0", "seed_1"]
    assert set(table["models"]) == ROWS - {"UNIT", "Cycle-MedGAN"}
    assert set(json.loads((out / "seeds" / "seed_1" / "table1.json").read_text())["models"]) == ROWS - {"UNIT",
                                                                                                     "Cycle-MedGAN"}

    third = _run(tmp_path, "--models=cyclegan")                  # back to one seed: nothing retrained
    assert third.returncode == 0, third.stderr[-3000:]
    again = json.loads((out / "summary.json").read_text())
    assert again["seeds"] == [0] and again["stages"]["train_cyclegan_seed0_steps_run"] == 0
    assert os.listdir(out / "seeds") == ["seed_0"]


def test_run_sh_rejects_bad_flags(tmp_path):
    bad = _run(tmp_path, "--models=pix2pix")
    assert bad.returncode == 2 and "--models" in bad.stderr and "Traceback" not in bad.stderr
    for seeds in ("--seeds=zero", "--seeds=1,1", "--seeds=-1"):
        bad = _run(tmp_path, seeds)
        assert bad.returncode == 2 and "--seeds" in bad.stderr and "Traceback" not in bad.stderr, seeds


def test_each_task_trains_cycle_medgan_with_the_weights_its_ablation_chose(tmp_path, monkeypatch):
    """The main job of each task uses the loss weights the fidelity study's rule chose on that task's tuning store
    (studies/choice.json): cycle-perceptual alone for mr_motion, the family defaults for pet_ct."""
    from types import SimpleNamespace

    from cycle_medgan_tf import catalogue
    from cycle_medgan_tf.commands import main_job
    from cycle_medgan_tf.config import resolve_config

    trained = {}

    def fake_train_run(model, profile, overrides, checked, overwrite):
        cfg = resolve_config(model, profile, overrides)
        trained[(overrides["data"], model)] = cfg.settings
        return SimpleNamespace(workdir=cfg.workdir), {"step": 4, "start_step": 0}

    monkeypatch.setattr(main_job, "train_run", fake_train_run)
    monkeypatch.setattr("cycle_medgan_tf.data.store.check_store", lambda path: None)
    for task in ("pet_ct", "mr_motion"):
        main_job._train_all(task, ["cyclegan", "cycle_medgan"], "smoke", dict(data=task, curve_data=""), [0],
                            str(tmp_path / task), False, {})
    assert trained[("mr_motion", "cycle_medgan")].lambda_cs == 0.0
    assert trained[("mr_motion", "cycle_medgan")].lambda_cp == 1.8
    assert trained[("pet_ct", "cycle_medgan")].lambda_cs == 1.0
    assert trained[("pet_ct", "cyclegan")] == trained[("mr_motion", "cyclegan")]
    # the shipped weights are the committed choice of each task's ablation
    with open(os.path.join(REPO, "studies", "choice.json")) as f:
        choice = json.load(f)
    defaults = catalogue.family("cycle_medgan").defaults
    for task in ("pet_ct", "mr_motion"):
        assert choice[task]["complete"], task
        shipped = dict({k: defaults[k] for k in ("lambda_cp", "lambda_cs")},
                       **catalogue.task_defaults("cycle_medgan", task))
        assert shipped == choice[task]["chosen"], task
