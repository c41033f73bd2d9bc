"""The exported SavedModel of a translator: it loads with TensorFlow alone, serves any batch size, keeps only the
variables in its object graph, and gives the in-memory model's outputs."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from cycle_medgan_tf.export import export_translators, load_translator
from cycle_medgan_tf.models.resnet_generator import build_resnet_generator

SIZE = 32


def manifest() -> dict:
    return {"model": "cyclegan", "task": "test", "domain_a": "PET", "domain_b": "CT", "window_a": [0, 1],
            "window_b": [-1000, 2000], "image_size": SIZE, "channels": 1}


@pytest.fixture()
def float32_policy():
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
def test_export_serves_the_in_memory_generator(precision, float32_policy, tmp_path):
    keras.mixed_precision.set_global_policy(precision)
    a2b, b2a = build_resnet_generator(SIZE, 1, name="g_ab"), build_resnet_generator(SIZE, 1, name="g_ba")
    x = np.random.default_rng(0).uniform(-1, 1, (3, SIZE, SIZE, 1)).astype(np.float32)
    # The in-memory outputs in the batches the translator will use (2, then 1): in bfloat16 a kernel's blocking,
    # and so its rounding, depends on the batch size, and a ResNet amplifies that to a few hundredths.
    expected = {name: np.concatenate([np.asarray(model(x[:2], training=False), np.float32),
                                      np.asarray(model(x[2:], training=False), np.float32)])
                for name, model in (("a2b", a2b), ("b2a", b2a))}
    export_translators(tmp_path, {"a2b": a2b, "b2a": b2a}, manifest())

    for direction in ("a2b", "b2a"):
        translator = load_translator(tmp_path, direction, batch_size=2)     # batches of 2 and 1
        y = translator(x)
        assert y.dtype == np.float32 and y.shape == x.shape
        np.testing.assert_allclose(y, expected[direction], atol=1e-5 if precision == "float32" else 2e-2)
        assert np.abs(y - expected["b2a" if direction == "a2b" else "a2b"]).max() > 1e-3   # not the other model
    loaded = tf.saved_model.load(os.path.join(tmp_path, "export", "a2b"))
    signature = loaded.signatures["serving_default"]
    assert list(signature.structured_input_signature[1]) == ["images"]
    assert len(loaded.model_variables) == len(a2b.variables) > 0
    assert json.loads((tmp_path / "export" / "manifest.json").read_text())["directions"] == ["a2b", "b2a"]
