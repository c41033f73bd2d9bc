"""Checksummed weight files shipped in ``checkpoints/`` and the pre-trained BiGAN feature extractor.

A feature-extractor file is a NumPy archive (no pickles) holding the image-path weights ``w0..w7`` of a BiGAN
discriminator and a JSON ``meta`` string; its SHA-256 is checked before anything is read: for the shipped file
against the constant below, for a user's file against the ``FILE.sha256`` written next to it by
``pretrain_bigan``.
"""

from __future__ import annotations

import json
import os

import numpy as np

from cycle_medgan_tf.weights import WeightsError, checkpoints_dir, sha256_file, verified_npz  # noqa: F401

SHIPPED_EXTRACTOR = "bigan_ct_extractor.npz"
SHIPPED_EXTRACTOR_SHA256 = "41d88f3928ce5abdec6d1c3aea0f59862238498a295dd4489c803c4cb2bf8303"


def save_extractor_weights(path: str, weights: list, meta: dict) -> str:
    """Write image-path weights and metadata atomically with a ``.sha256`` file beside; returns the SHA-256."""
    arrays = {f"w{i}": np.asarray(w, dtype=np.float32) for i, w in enumerate(weights)}
    arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
    tmp = path + ".tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    digest = sha256_file(path)
    with open(path + ".sha256", "w") as f:
        f.write(f"{digest}  {os.path.basename(path)}\n")
    return digest


def load_extractor_weights(path: str | None = None) -> tuple[list, dict]:
    """(weights, meta) of a feature-extractor file; ``None`` means the shipped one."""
    if path is None:
        path, expected = os.path.join(checkpoints_dir(), SHIPPED_EXTRACTOR), SHIPPED_EXTRACTOR_SHA256
    else:
        expected = None
    arrays = verified_npz(path, expected)
    try:
        meta = json.loads(str(arrays.pop("meta")))
        weights = [arrays[f"w{i}"] for i in range(len(arrays))]
    except (KeyError, ValueError) as exc:
        raise WeightsError(f"{path} is not a feature-extractor file ({exc})") from exc
    return weights, meta


def load_feature_extractor(path: str | None = None, image_size: int | None = None):
    """The frozen BiGAN image-path feature extractor (phi_1..phi_4) with verified pre-trained weights."""
    from cycle_medgan_tf.models.bigan import feature_extractor_from_weights

    weights, _ = load_extractor_weights(path)
    try:
        return feature_extractor_from_weights(weights, image_size)
    except ValueError as exc:
        raise WeightsError(f"feature-extractor weights do not fit the BiGAN image path: {exc}") from exc
