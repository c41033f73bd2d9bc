"""Do the cycle feature losses mean the same at every image size? ``python -m cycle_medgan_tf.bench.feature_scale
--data=STORE64,STORE128,STORE256 [--extractor=FILE --blur_mm=2 --noise_std=0.05 --noise_reference_mm=4
--max_slices=32]`` prints one JSON object (docs/LOSS_WEIGHTS.md).

Forward passes only: the cycle-perceptual and cycle-style losses (the cycle_medgan per-layer weights, before
lambda_cp / lambda_cs; both domains summed) between each store's validation images and the same images under one
physical degradation, as if it were their cycle reconstruction: a Gaussian blur of ``--blur_mm`` and white noise of
``--noise_std`` per pixel of ``--noise_reference_mm`` (``noise_std * reference / spacing`` per pixel: the same noise
power per unit area at every spacing; not clipped), each alone and both. Each is measured with the extractor fed at
its native scale (``resize=native``, the training code's area down-sampling) and fed the store's pixels directly
(``resize=none``, what training did before the extractor knew its scale), with every value's ratio to the first
store's (``ratio_to_first``).
"""

from __future__ import annotations

import json

import numpy as np

from cycle_medgan_tf.cli import fail, run_app

DEGRADATIONS = ("blur", "noise", "blur+noise")
LOSSES = ("cycle_perceptual", "cycle_style")


def degrade(images: np.ndarray, spacing_mm: float, kind: str, blur_mm: float, noise_std: float,
            noise_reference_mm: float, seed: int = 0) -> np.ndarray:
    """``images`` (N, S, S, 1) at ``spacing_mm`` pixels with a blur of ``blur_mm`` and/or white noise of ``noise_std``
    per ``noise_reference_mm`` pixel (``kind``: blur, noise or blur+noise)."""
    from scipy import ndimage

    out = images.astype(np.float64)
    parts = kind.split("+")
    if "blur" in parts and blur_mm > 0:
        sigma = blur_mm / spacing_mm
        out = ndimage.gaussian_filter(out, sigma=(0, sigma, sigma, 0), mode="nearest")
    if "noise" in parts and noise_std > 0:
        out = out + np.random.default_rng(seed).normal(0.0, noise_std * noise_reference_mm / spacing_mm, out.shape)
    return out.astype(np.float32)


def feature_loss_values(extractor, clean: np.ndarray, degraded: np.ndarray, perceptual_weights, style_weights,
                        batch: int = 8) -> dict:
    """Means over the slices of both layer-weighted losses and of each layer's unweighted terms, for ``degraded``
    as the reconstruction of ``clean``."""
    from cycle_medgan_tf import losses

    n_layers = len(perceptual_weights)
    one_hot = [[1.0 if j == i else 0.0 for j in range(n_layers)] for i in range(n_layers)]
    sums = dict(cycle_perceptual=0.0, cycle_style=0.0, perceptual_per_layer=np.zeros(n_layers),
                style_per_layer=np.zeros(n_layers))
    for start in range(0, len(clean), batch):
        fx, fy = extractor(clean[start:start + batch]), extractor(degraded[start:start + batch])
        weight = len(clean[start:start + batch])
        sums["cycle_perceptual"] += weight * float(losses.cycle_perceptual_loss(fx, fy, perceptual_weights))
        sums["cycle_style"] += weight * float(losses.cycle_style_loss(fx, fy, style_weights))
        for key, loss in (("perceptual_per_layer", losses.cycle_perceptual_loss),
                          ("style_per_layer", losses.cycle_style_loss)):
            sums[key] += weight * np.array([float(loss(fx, fy, w)) for w in one_hot])
    return {k: (v / len(clean)).tolist() if isinstance(v, np.ndarray) else v / len(clean) for k, v in sums.items()}


def _store_rows(path: str, extractor_path: str, weights: tuple, degradation: dict, max_slices: int) -> list:
    """The rows of one store: each degradation, with and without the native-scale resize."""
    from cycle_medgan_tf.data.pipeline import val_arrays
    from cycle_medgan_tf.data.store import open_store
    from cycle_medgan_tf.models.pretrained import load_feature_extractor

    with open_store(path) as store:
        spacing, size = store.pixel_spacing_mm, store.image_size
    domains = val_arrays(path, max_slices=max_slices)[:2]
    extractors = {"native": load_feature_extractor(extractor_path or None, spacing, size),
                  "none": load_feature_extractor(extractor_path or None)}
    rows = []
    for kind in DEGRADATIONS:
        degraded = [degrade(x, spacing, kind, seed=i, **degradation) for i, x in enumerate(domains)]
        for resize, extractor in extractors.items():
            per_domain = [feature_loss_values(extractor, x, y, *weights) for x, y in zip(domains, degraded)]
            summed = {k: np.sum([d[k] for d in per_domain], axis=0).tolist() for k in per_domain[0]}
            downsample = extractor.extractor_scale.downsample if resize == "native" else 1
            rows.append(dict(size=size, pixel_spacing_mm=spacing, degradation=kind, resize=resize,
                             downsample=downsample, **summed))
    return rows


def measure(paths: list, extractor_path: str = "", blur_mm: float = 2.0, noise_std: float = 0.05,
            noise_reference_mm: float = 4.0, max_slices: int = 32) -> dict:
    """Feature-loss values of the same physical degradations on each store (module docstring)."""
    from cycle_medgan_tf.catalogue import family

    defaults = family("cycle_medgan").defaults
    weights = (defaults["perceptual_layer_weights"], defaults["style_layer_weights"])
    degradation = dict(blur_mm=blur_mm, noise_std=noise_std, noise_reference_mm=noise_reference_mm)
    rows = [row for path in paths for row in _store_rows(path, extractor_path, weights, degradation, max_slices)]
    first = {(r["degradation"], r["resize"]): r for r in rows if r["size"] == rows[0]["size"]}
    for r in rows:
        ref = first[(r["degradation"], r["resize"])]
        r["ratio_to_first"] = {k: r[k] / ref[k] if ref[k] else None for k in LOSSES}
    return dict(settings=dict(degradation, max_slices=max_slices, extractor=extractor_path or "shipped",
                              perceptual_layer_weights=weights[0], style_layer_weights=weights[1]), results=rows)


def define_flags() -> None:
    """The command-line flags (defined only when run as a command, so that importing this module is free)."""
    from absl import flags

    flags.DEFINE_list("data", None, "Stores at different sizes (e.g. the default pet_ct data at 64, 128, 256).")
    flags.DEFINE_string("extractor", "", "Feature-extractor file ('' = the shipped one).")
    flags.DEFINE_float("blur_mm", 2.0, "Gaussian blur sigma in mm.")
    flags.DEFINE_float("noise_std", 0.05, "Noise standard deviation (model range [-1, 1]) per pixel of "
                       "--noise_reference_mm.")
    flags.DEFINE_float("noise_reference_mm", 4.0, "Pixel spacing at which the noise has --noise_std.", lower_bound=0)
    flags.DEFINE_integer("max_slices", 32, "Validation slices per domain.", lower_bound=1)


def main(argv):
    del argv
    import os

    from absl import flags

    from cycle_medgan_tf.data.validate import validate_store
    from cycle_medgan_tf.weights import WeightsError

    f = flags.FLAGS
    if not f.data:
        fail("--data is required (comma-separated slice stores)")
    if f.blur_mm < 0 or f.noise_std < 0:
        fail("--blur_mm and --noise_std must be >= 0")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for path in f.data:
        problems = validate_store(path)
        if problems:
            fail(f"{path}: " + "; ".join(problems))
    try:
        result = measure(f.data, f.extractor, f.blur_mm, f.noise_std, f.noise_reference_mm, f.max_slices)
    except WeightsError as exc:          # includes a scale the extractor cannot be fed at
        fail(str(exc))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    define_flags()
    run_app(main)
