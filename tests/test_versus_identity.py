"""``bench.versus_identity``: a translator that copies its input is exactly Identity (difference 0, not
significant); one that damages the input is significantly worse than Identity; bad input is one line."""

from __future__ import annotations

import json

import numpy as np

from cycle_medgan_tf.bench.versus_identity import versus_identity
from cycle_medgan_tf.export import export_translators
from tests.conftest import run_module
from tests.test_evaluate import SIZE, manifest, tiny_translator, write_small_store


def _copier():
    import keras

    model = keras.Sequential([keras.Input((SIZE, SIZE, 1)), keras.layers.Conv2D(1, 1, use_bias=False, dtype="float32")])
    model.layers[-1].set_weights([np.ones((1, 1, 1, 1), np.float32)])
    return model


def test_a_copy_is_identity_and_damage_is_significantly_worse(tmp_path):
    store = write_small_store(tmp_path / "small.h5")
    copy_run, damage_run = str(tmp_path / "copy"), str(tmp_path / "damage")
    export_translators(copy_run, {"a2b": _copier()}, manifest("cyclegan"))
    export_translators(damage_run, {"a2b": tiny_translator(-1.2, 0)}, manifest("cyclegan"))
    copied = versus_identity(store, "cyclegan", copy_run)
    assert copied["ssim"]["diff"] == 0.0 and copied["ssim"]["significant"] is False
    assert copied["psnr"]["run"] == copied["psnr"]["identity"]
    result = run_module("cycle_medgan_tf.bench.versus_identity", f"--data={store}", f"--runs=cyclegan={damage_run}")
    assert result.returncode == 0, result.stderr
    damaged = json.loads(result.stdout.strip().splitlines()[-1])["metrics"]
    assert damaged["ssim"]["diff"] < 0 and damaged["ssim"]["significant"] is True
    assert damaged["ssim"]["ci95"][1] < 0
    missing = run_module("cycle_medgan_tf.bench.versus_identity", f"--data={store}",
                         f"--runs=cyclegan={tmp_path / 'nowhere'}")
    assert missing.returncode == 2 and missing.stderr.count("error:") == 1 and "Traceback" not in missing.stderr
    bare = run_module("cycle_medgan_tf.bench.versus_identity", f"--data={store}")
    assert bare.returncode == 2 and "error: --data and --runs are required" in bare.stderr
