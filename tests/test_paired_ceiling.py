"""The supervised ceiling trains the cycle models' generator on pairs and scores it like a run (and draws it, without
replacing a figure it was not told to); it refuses to be scored on the subjects it trained on."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from cycle_medgan_tf.data.store import write_store
from tests.conftest import REPO
from tests.test_evaluate import (TASK, WINDOW_A, WINDOW_B, head_ct, manifest, pet_from_ct, tiny_translator,
                                 write_small_store)


def _pairs_store(path, prefix: str) -> str:
    ct = head_ct(12, 7)
    return write_store(
        path, task=TASK, domain_a="PET", domain_b="CT", pixel_spacing_mm=4.0,
        train_a=pet_from_ct(ct[:4]), train_a_subjects=["pa0"] * 4, train_b=ct[4:8], train_b_subjects=["pb0"] * 4,
        val_a=pet_from_ct(ct), val_b=ct, val_subjects=[f"{prefix}{i // 4}" for i in range(12)],
        window_a=WINDOW_A, window_b=WINDOW_B)


def _run(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "cycle_medgan_tf.bench.paired_ceiling", *args],
                          capture_output=True, text=True, timeout=600, cwd=REPO, env=env)


def test_ceiling_trains_on_pairs_and_scores_against_the_look_up(tmp_path):
    data = write_small_store(tmp_path / "data.h5")
    pairs = _pairs_store(tmp_path / "pairs.h5", "p")
    from cycle_medgan_tf.export import export_translators

    run = str(tmp_path / "run")
    export_translators(run, {"a2b": tiny_translator(-1.2, 0), "b2a": tiny_translator(1.2, 0)}, manifest("cyclegan"))
    figure = tmp_path / "fig" / "ceiling.png"
    result = _run(f"--pairs={pairs}", f"--data={data}", "--steps=3", "--precision=float32", f"--figure={figure}",
                  f"--runs=cyclegan={run}")
    assert result.returncode == 0, result.stderr[-2000:]
    lookup, ceiling = (json.loads(line) for line in result.stdout.strip().splitlines())
    assert lookup["run"] == "lookup" and ceiling["run"] == "paired_l1" and ceiling["steps"] == 3
    assert ceiling["pairs"] == 12 and ceiling["precision"] == "float32"
    assert np.isfinite(ceiling["structure_corr"]) and ceiling["interior_mae_hu"] > 0
    written = figure.read_bytes()
    assert written.startswith(b"\x89PNG")
    again = _run(f"--pairs={pairs}", f"--data={data}", "--steps=3", f"--figure={figure}")
    assert again.returncode == 2 and "--overwrite" in again.stderr and "Traceback" not in again.stderr
    assert figure.read_bytes() == written
    missing = _run(f"--pairs={pairs}", f"--data={data}", "--steps=3", f"--figure={tmp_path / 'new.png'}",
                   f"--runs=cyclegan={tmp_path / 'missing'}")          # refused before any training
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1
    assert "Traceback" not in missing.stderr and not (tmp_path / "new.png").exists()


def test_ceiling_refuses_pairs_of_the_scored_subjects(tmp_path):
    data = write_small_store(tmp_path / "data.h5")
    same = _pairs_store(tmp_path / "same.h5", "v")        # the scored store's validation subjects are v0..v2
    result = _run(f"--pairs={same}", f"--data={data}", "--steps=2")
    assert result.returncode == 2 and "also in --data" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_motion_figures_put_a_copy_at_identity_and_the_truth_above_it():
    from cycle_medgan_tf.bench.paired_ceiling import versus_identity

    rng = np.random.default_rng(0)
    target = np.clip(rng.normal(0, 0.3, (12, 32, 32)), -1, 1).astype(np.float32)
    corrupted = np.clip(target + rng.normal(0, 0.1, target.shape), -1, 1).astype(np.float32)
    subjects = [f"s{i // 3}" for i in range(12)]
    copy = versus_identity(corrupted, target, corrupted, subjects)
    assert copy["ssim_minus_identity"] == 0.0 and copy["psnr"] == copy["psnr_identity"]
    better = versus_identity(0.5 * (target + corrupted), target, corrupted, subjects)
    assert better["psnr_minus_identity_ci95"][0] > 0 and better["ssim_minus_identity_ci95"][0] > 0
