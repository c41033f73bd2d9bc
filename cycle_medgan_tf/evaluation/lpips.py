"""LPIPS v0.1 with the AlexNet backbone (Zhang et al., CVPR 2018) as a Keras model.

Same computation as the official ``lpips.LPIPS(net='alex', version='0.1')``: inputs in [-1, 1] (RGB), the
ScalingLayer ``(x - shift) / scale``, AlexNet relu1..relu5 with PyTorch padding (explicit zero padding followed by
'valid' convolutions, 3x3 stride-2 'valid' max-pooling), channel-wise unit normalisation (eps 1e-10), squared
difference, a 1x1 linear layer without bias per stage, spatial mean, sum over the five stages.

Weights come from ``checkpoints/lpips_alexnet_v0.1.npz`` (made by ``scripts/convert_lpips_weights.py``; see
``checkpoints/README.md``), read with ``allow_pickle=False`` after checking its SHA-256. The environment variable
``CYCLE_MEDGAN_LPIPS_WEIGHTS`` may point to another copy of the same file.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from cycle_medgan_tf.weights import WeightsError, checkpoints_dir, sha256_file

WEIGHTS_SHA256 = "39d397b364455c677df15c27393039b752c60ed484ae0fe078303601684db58f"
WEIGHTS_ENV = "CYCLE_MEDGAN_LPIPS_WEIGHTS"
DEFAULT_WEIGHTS = Path(checkpoints_dir()) / "lpips_alexnet_v0.1.npz"
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
NORM_EPS = 1e-10
# (filters, kernel, stride, zero padding, max-pool before this conv)
ALEXNET_CONVS = ((64, 11, 4, 2, False), (192, 5, 1, 2, True), (384, 3, 1, 1, True),
                 (256, 3, 1, 1, False), (256, 3, 1, 1, False))


class LPIPSWeightsError(WeightsError):
    """The LPIPS weight archive is missing, corrupt or not the expected file."""


def weights_path() -> Path:
    """Where the weight archive is read from (``$CYCLE_MEDGAN_LPIPS_WEIGHTS`` or ``checkpoints/``)."""
    return Path(os.environ.get(WEIGHTS_ENV) or DEFAULT_WEIGHTS)


def load_weights(path=None) -> dict[str, np.ndarray]:
    """Read and verify the archive: conv{1..5}_kernel (HWIO), conv{1..5}_bias, lin{0..4}_kernel (channels,)."""
    path = Path(path) if path is not None else weights_path()
    hint = "create it with scripts/convert_lpips_weights.py (see checkpoints/README.md)"
    if not path.is_file():
        raise LPIPSWeightsError(f"LPIPS weights not found at {path}; {hint}")
    digest = sha256_file(path)
    if digest != WEIGHTS_SHA256:
        raise LPIPSWeightsError(f"LPIPS weights at {path} are corrupt or not the v0.1 AlexNet archive "
                                f"(SHA-256 {digest}, expected {WEIGHTS_SHA256}); {hint}")
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    expected_in = 3
    for i, (filters, kernel, _, _, _) in enumerate(ALEXNET_CONVS, start=1):
        _expect(arrays, f"conv{i}_kernel", (kernel, kernel, expected_in, filters))
        _expect(arrays, f"conv{i}_bias", (filters,))
        _expect(arrays, f"lin{i - 1}_kernel", (filters,))
        expected_in = filters
    return arrays


def _expect(arrays: dict, name: str, shape: tuple) -> None:
    if name not in arrays or arrays[name].shape != shape:
        found = arrays[name].shape if name in arrays else "nothing"
        raise LPIPSWeightsError(f"LPIPS weight archive: {name} should have shape {shape}, found {found}")


def _feature_side(side: int) -> int:
    """Spatial size of relu5 for an input side (conv1 11x11/4 pad 2, two 3x3/2 'valid' max-pools)."""
    side = (side + 4 - 11) // 4 + 1
    for _ in range(2):
        side = (side - 3) // 2 + 1 if side >= 3 else 0
    return max(side, 0)


MIN_SIDE = next(s for s in range(11, 256) if _feature_side(s) >= 1)   # 31, as in the PyTorch original


def _scaling_layer():
    import keras

    class ScalingLayer(keras.layers.Layer):
        """LPIPS input normalisation ``(x - shift) / scale`` per RGB channel."""

        def call(self, x):
            return (x - keras.ops.convert_to_tensor(SHIFT, x.dtype)) / keras.ops.convert_to_tensor(SCALE, x.dtype)

    return ScalingLayer(name="lpips_scaling", dtype="float32")


def build_alexnet_features(weights: dict[str, np.ndarray]):
    """Keras model: RGB (N, H, W, 3) in [-1, 1] -> [relu1, relu2, relu3, relu4, relu5] of the scaled input."""
    import keras

    # Every layer is float32 whatever the global mixed-precision policy of the process is.
    inputs = keras.Input((None, None, 3), name="rgb", dtype="float32")
    x = _scaling_layer()(inputs)
    outputs = []
    for i, (filters, kernel, stride, pad, pool_first) in enumerate(ALEXNET_CONVS, start=1):
        if pool_first:
            x = keras.layers.MaxPooling2D(pool_size=3, strides=2, padding="valid", name=f"pool{i - 1}",
                                          dtype="float32")(x)
        x = keras.layers.ZeroPadding2D(pad, name=f"pad{i}", dtype="float32")(x)
        conv = keras.layers.Conv2D(filters, kernel, strides=stride, padding="valid", activation="relu",
                                   name=f"conv{i}", dtype="float32")
        x = conv(x)
        conv.set_weights([weights[f"conv{i}_kernel"], weights[f"conv{i}_bias"]])
        outputs.append(x)
    return keras.Model(inputs, outputs, name="lpips_alexnet")


class LPIPSAlex:
    """LPIPS v0.1 AlexNet distance; ``distance(x0, x1)`` for RGB batches in [-1, 1]."""

    def __init__(self, weights_file=None):
        import tensorflow as tf

        weights = load_weights(weights_file)
        self.features = build_alexnet_features(weights)
        self._lin = [tf.constant(weights[f"lin{i}_kernel"], tf.float32) for i in range(len(ALEXNET_CONVS))]
        self._distance = tf.function(self._distance_graph, reduce_retracing=True)

    def _distance_graph(self, x0, x1):
        import tensorflow as tf

        n = tf.shape(x0)[0]
        feats = self.features(tf.concat([x0, x1], axis=0), training=False)
        total = tf.zeros([n], tf.float32)
        for feat, lin in zip(feats, self._lin):
            norm = tf.sqrt(tf.reduce_sum(tf.square(feat), axis=-1, keepdims=True))
            unit = feat / (norm + NORM_EPS)
            diff = tf.square(unit[:n] - unit[n:])
            total += tf.reduce_mean(tf.tensordot(diff, lin, axes=[[3], [0]]), axis=[1, 2])
        return total

    def distance(self, x0: np.ndarray, x1: np.ndarray, batch_size: int = 16) -> np.ndarray:
        """LPIPS of each pair in two (N, H, W, 3) float batches in [-1, 1]; float64 array of N values."""
        x0 = np.asarray(x0, dtype=np.float32)
        x1 = np.asarray(x1, dtype=np.float32)
        if x0.shape != x1.shape or x0.ndim != 4 or x0.shape[-1] != 3:
            raise ValueError(f"LPIPS expects two (N, H, W, 3) batches of equal shape, got {x0.shape}, {x1.shape}")
        if min(x0.shape[1:3]) < MIN_SIDE:
            raise ValueError(f"LPIPS (AlexNet) needs images of at least {MIN_SIDE}x{MIN_SIDE}, got {x0.shape[1:3]}")
        batch_size = max(1, int(batch_size))
        out = [np.asarray(self._distance(x0[i:i + batch_size], x1[i:i + batch_size]))
               for i in range(0, len(x0), batch_size)]
        return np.concatenate(out).astype(np.float64) if out else np.zeros(0)


_MODELS: dict[str, LPIPSAlex] = {}
_LOCK = threading.Lock()


def get_model(weights_file=None) -> LPIPSAlex:
    """The LPIPS model for a weight file, built once per process."""
    key = str(Path(weights_file) if weights_file is not None else weights_path())
    with _LOCK:
        if key not in _MODELS:
            _MODELS[key] = LPIPSAlex(key)
        return _MODELS[key]


def lpips_distance_rgb(x0: np.ndarray, x1: np.ndarray, batch_size: int = 16, weights_file=None) -> np.ndarray:
    """LPIPS v0.1 AlexNet of RGB pairs (N, H, W, 3) in [-1, 1] (the official code's input convention)."""
    return get_model(weights_file).distance(x0, x1, batch_size=batch_size)
