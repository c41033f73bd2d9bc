"""Checksummed weight files shipped in ``checkpoints/`` and the pre-trained BiGAN feature extractor.

A feature-extractor file is a NumPy archive (no pickles) holding the image-path weights ``w0..w7`` of a BiGAN
discriminator and a JSON ``meta`` string; its SHA-256 is checked before anything is read: for the shipped file
against the constant below, for a user's file against the ``FILE.sha256`` written next to it by
``pretrain_bigan``.

The extractor's features mean what they mean at the scale it was trained at: ``meta`` records that native
``image_size`` and ``pixel_spacing_mm``. A run at a finer pixel spacing feeds it its images area-down-sampled by
the integer factor between the two spacings (average pooling, in the graph, so gradients flow through it); a run
at a coarser spacing, or a non-integer factor, is refused (:class:`ExtractorScaleError`).
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np

from cycle_medgan_tf.atomic import atomic_path, atomic_write_text
from cycle_medgan_tf.weights import WeightsError, checkpoints_dir, sha256_file, verified_npz  # noqa: F401

SHIPPED_EXTRACTOR = "bigan_ct_extractor.npz"
SHIPPED_EXTRACTOR_SHA256 = "41d88f3928ce5abdec6d1c3aea0f59862238498a295dd4489c803c4cb2bf8303"
# The shipped file's ``meta`` predates the pixel_spacing_mm field; its provenance (checkpoints/README.md) fixes it:
# default bigan_ct data at 64x64 over the 256 mm field of view. Valid for exactly the file the checksum pins.
SHIPPED_EXTRACTOR_META_SUPPLEMENT = {"pixel_spacing_mm": 4.0}
SCALE_TOLERANCE = 1e-3          # relative: how far a spacing ratio may be from an integer and still count as one


class ExtractorScaleError(WeightsError):
    """The run's pixel spacing cannot be brought to the feature extractor's native one."""


@dataclasses.dataclass(frozen=True)
class ExtractorScale:
    """Where an extractor meets a run: its native image size and pixel spacing, and the run's input down-sampling."""

    image_size: int
    pixel_spacing_mm: float
    downsample: int = 1

    def describe(self) -> str:
        return (f"extractor native {self.image_size}x{self.image_size} at {self.pixel_spacing_mm:g} mm pixels; "
                + (f"run images area-down-sampled {self.downsample}x" if self.downsample > 1 else "no resize"))


def save_extractor_weights(path: str, weights: list, meta: dict) -> str:
    """Write image-path weights and metadata atomically with a ``.sha256`` file beside; returns the SHA-256."""
    arrays = {f"w{i}": np.asarray(w, dtype=np.float32) for i, w in enumerate(weights)}
    arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)
    digest = sha256_file(path)
    atomic_write_text(path + ".sha256", f"{digest}  {os.path.basename(path)}\n")
    return digest


def load_extractor_weights(path: str | None = None) -> tuple[list, dict]:
    """(weights, meta) of a feature-extractor file; ``None`` means the shipped one."""
    shipped = path is None
    if shipped:
        path, expected = os.path.join(checkpoints_dir(), SHIPPED_EXTRACTOR), SHIPPED_EXTRACTOR_SHA256
    else:
        expected = None
    arrays = verified_npz(path, expected)
    try:
        meta = json.loads(str(arrays.pop("meta")))
        weights = [arrays[f"w{i}"] for i in range(len(arrays))]
    except (KeyError, ValueError) as exc:
        raise WeightsError(f"{path} is not a feature-extractor file ({exc})") from exc
    if shipped:
        meta = {**SHIPPED_EXTRACTOR_META_SUPPLEMENT, **meta}
    return weights, meta


def native_scale(meta: dict, source: str) -> ExtractorScale:
    """The image size and pixel spacing an extractor was trained at, from its ``meta``."""
    try:
        size, spacing = int(meta["image_size"]), float(meta["pixel_spacing_mm"])
    except (KeyError, TypeError, ValueError):
        raise ExtractorScaleError(f"{source} does not record the image_size and pixel_spacing_mm it was trained at "
                                  "(written by an older pretrain_bigan?); pre-train it again") from None
    if size < 1 or not spacing > 0:
        raise ExtractorScaleError(f"{source} records an invalid native scale ({size} px, {spacing} mm)")
    return ExtractorScale(size, spacing)


def scale_for_run(native: ExtractorScale, run_spacing_mm: float, run_image_size: int, source: str) -> ExtractorScale:
    """``native`` with the integer down-sampling that brings a run's images to it; refuses what cannot match."""
    ratio = native.pixel_spacing_mm / float(run_spacing_mm)
    factor = int(round(ratio))
    where = (f"the feature extractor {source} was trained at {native.pixel_spacing_mm:g} mm pixels "
             f"({native.image_size}x{native.image_size}) but this run has {run_spacing_mm:g} mm pixels "
             f"({run_image_size}x{run_image_size})")
    if factor < 1 or abs(ratio - factor) > SCALE_TOLERANCE * ratio:
        coarser = "the run is coarser than the extractor" if ratio < 1 else f"{ratio:.3g} is not an integer factor"
        raise ExtractorScaleError(f"{where}: {coarser}; choose an --image_size whose pixel spacing is an integer "
                                  "fraction of the extractor's, or pre-train one at this scale (pretrain_bigan) "
                                  "and pass it with --extractor")
    if run_image_size % factor:
        raise ExtractorScaleError(f"{where}: the image size is not divisible by the down-sampling factor {factor}")
    return dataclasses.replace(native, downsample=factor)


def feature_extractor_at_scale(weights: list, downsample: int = 1):
    """The frozen phi_1..phi_4 extractor; with ``downsample`` > 1 its input is first area-down-sampled (average
    pooling by that factor, float32, differentiable)."""
    import keras

    from cycle_medgan_tf.models.bigan import feature_extractor_from_weights
    from cycle_medgan_tf.models.layers import image_input

    try:
        inner = feature_extractor_from_weights(weights)
    except ValueError as exc:
        raise WeightsError(f"feature-extractor weights do not fit the BiGAN image path: {exc}") from exc
    if downsample == 1:
        return inner
    inputs = image_input(None, 1)
    pooled = keras.layers.AveragePooling2D(downsample, strides=downsample, padding="valid", dtype="float32",
                                           name="area_downsample")(inputs)
    model = keras.Model(inputs, inner(pooled), name="feature_extractor_at_native_scale")
    model.trainable = False
    return model


def prepare_feature_extractor(path: str | None = None, pixel_spacing_mm: float | None = None,
                              image_size: int | None = None) -> tuple[list, ExtractorScale | None]:
    """Verified weights of a feature-extractor file (``None``: the shipped one) and how it meets a run at
    ``pixel_spacing_mm`` (and ``image_size``), refusing what cannot match; builds nothing. Without
    ``pixel_spacing_mm`` the caller chooses the scale (the native one is returned when the file records it)."""
    weights, meta = load_extractor_weights(path)
    source = path or SHIPPED_EXTRACTOR
    if pixel_spacing_mm is None:
        return weights, native_scale(meta, source) if "pixel_spacing_mm" in meta else None
    return weights, scale_for_run(native_scale(meta, source), pixel_spacing_mm, image_size or 0, source)


def build_feature_extractor(weights: list, scale: ExtractorScale | None):
    """The frozen extractor of :func:`prepare_feature_extractor`'s result; its ``extractor_scale`` is ``scale``."""
    model = feature_extractor_at_scale(weights, scale.downsample if scale else 1)
    model.extractor_scale = scale
    return model


def load_feature_extractor(path: str | None = None, pixel_spacing_mm: float | None = None,
                           image_size: int | None = None):
    """The frozen BiGAN feature extractor (phi_1..phi_4) with verified pre-trained weights, for images at
    ``pixel_spacing_mm`` (and ``image_size``) if given, else fed at whatever scale the caller chooses. The model's
    ``extractor_scale`` (an :class:`ExtractorScale`) says how it meets the run."""
    return build_feature_extractor(*prepare_feature_extractor(path, pixel_spacing_mm, image_size))
