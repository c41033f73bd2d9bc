"""The main job end to end: ``./run.sh pet_ct --profile=smoke`` sets up, generates data, trains the three models,
evaluates them and writes every output file; a second run reuses the finished stages."""

from __future__ import annotations

import json
import os
import subprocess

from tests.conftest import REPO


def _run(tmp_path, *args):
    env = dict(os.environ, CYCLE_MEDGAN_CACHE=str(tmp_path / "cache"), TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("VIRTUAL_ENV", None)
    return subprocess.run([os.path.join(REPO, "run.sh"), "pet_ct", "--profile=smoke", f"--results={tmp_path / 'res'}",
                           *args], capture_output=True, text=True, timeout=1500, cwd=REPO, env=env)


def test_run_sh_pet_ct_smoke_writes_every_output(tmp_path):
    first = _run(tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    out = tmp_path / "res" / "pet_ct"
    for name in ("table1.md", "table1.csv", "table1.tex", "table1.json", "fig3.png", "summary.json"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    for model in ("unit", "cyclegan", "cycle_medgan"):
        assert (out / "runs" / model / "export" / "manifest.json").is_file()
    table = json.loads((out / "table1.json").read_text())
    assert set(table["models"]) == {"UNIT", "CycleGAN", "Cycle-MedGAN", "Identity"}
    assert "| Cycle-MedGAN |" in first.stdout and "Results:" in first.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["profile"] == "smoke" and summary["wall_time_s"] > 0
    assert all(summary["stages"][f"train_{m}_steps_run"] == 4 for m in ("unit", "cyclegan", "cycle_medgan"))

    second = _run(tmp_path, "--models=cyclegan")
    assert second.returncode == 0, second.stderr[-3000:]
    again = json.loads((out / "summary.json").read_text())
    assert again["stages"]["train_cyclegan_steps_run"] == 0      # finished stage reused, not retrained


def test_run_sh_rejects_bad_flags(tmp_path):
    bad = _run(tmp_path, "--models=pix2pix")
    assert bad.returncode == 2 and "--models" in bad.stderr and "Traceback" not in bad.stderr
