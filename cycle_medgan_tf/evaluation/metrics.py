"""Image-quality metrics of Table I: SSIM, PSNR, LPIPS and pixel-domain VIF (conventions in the README, "Evaluation
conventions").

Every metric takes the reference (target) image first and the prediction second, both in the models' range
[-1, 1], shaped (H, W) for one image or (N, H, W) for a batch. One image gives a Python float, a batch a float64
array of N values. Values are mapped linearly (never clipped) to the range each reference implementation
expects:

- ``ssim``: [0, 1], data range 1, Wang et al. (2004) settings; equal to
  ``skimage.metrics.structural_similarity(a, b, data_range=1, gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False)``: 11x11 Gaussian (sigma 1.5, truncated at 3.5 sigma), K1 0.01, K2 0.03,
  population statistics, SSIM map averaged over the region whose windows lie inside the image (skimage filters
  with reflection and then crops 5 pixels per side, so the reflected pixels never reach the mean).
- ``psnr``: [0, 1], 10 log10(1 / MSE) (identical to [-1, 1] with data range 2); inf for identical images.
- ``lpips``: LPIPS v0.1 AlexNet on [-1, 1] with the grey channel repeated to RGB (see ``evaluation/lpips.py``).
- ``vif``: VIFp of LIVE's ``vifp_mscale.m`` on [0, 255]: 4 scales, Gaussian windows of N = 2^(5-s)+1 taps
  with sigma N/5, 'valid' filtering, dyadic downsampling after filtering, sigma_nsq = 2. Asymmetric. NaN when
  the reference has no variance at all (its information content, the denominator, is zero).

SSIM, PSNR and VIF are computed in float64 with separable filters over whole batches (exact to rounding);
LPIPS runs as a batched float32 Keras model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
VIF_SIGMA_NSQ = 2.0
VIF_SCALES = 4
VIF_EPS = 1e-10
_CHUNK_PIXELS = 16 * 256 * 256   # float64 working set per block of slices (a few tens of MB per array)


def _as_pair(reference, prediction) -> tuple[np.ndarray, np.ndarray, bool]:
    """Validate two images/batches and return them as float64 (N, H, W) plus whether one image was given."""
    ref = np.asarray(reference, dtype=np.float64)
    pred = np.asarray(prediction, dtype=np.float64)
    if ref.shape != pred.shape:
        raise ValueError(f"reference {ref.shape} and prediction {pred.shape} must have the same shape")
    if ref.ndim not in (2, 3):
        raise ValueError(f"images must have shape (H, W) or (N, H, W), got {ref.shape}")
    if not (np.all(np.isfinite(ref)) and np.all(np.isfinite(pred))):
        raise ValueError("images contain NaN or Inf values")
    single = ref.ndim == 2
    if single:
        ref, pred = ref[None], pred[None]
    return ref, pred, single


def _result(values: np.ndarray, single: bool):
    values = np.asarray(values, dtype=np.float64)
    return float(values[0]) if single else values


def slice_chunks(n: int, height: int, width: int):
    """Slices over a batch of ``n`` images of ``height`` x ``width`` that bound the float64 working set."""
    step = max(1, _CHUNK_PIXELS // max(1, height * width))
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


def _filter_valid(images: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Separable 'valid' correlation of (N, H, W) images with the outer product of ``taps`` with itself."""
    rows = np.einsum("nhwk,k->nhw", sliding_window_view(images, len(taps), axis=2), taps)
    return np.einsum("nhwk,k->nhw", sliding_window_view(rows, len(taps), axis=1), taps)


def _ssim_taps() -> np.ndarray:
    """scipy.ndimage's Gaussian kernel as skimage uses it: radius int(3.5 * 1.5 + 0.5) = 5, i.e. 11 taps."""
    radius = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    taps = np.exp(-0.5 * x * x / SSIM_SIGMA**2)
    return taps / taps.sum()


def ssim_margin() -> int:
    """Pixels per side that the valid SSIM map loses (the Gaussian window's radius, 5)."""
    return len(_ssim_taps()) // 2


def ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The SSIM map of (N, H, W) images already in [0, 1] over the valid region (``ssim_margin()`` pixels
    cropped per side); its mean over all pixels is :func:`ssim`."""
    taps = _ssim_taps()
    ux, uy = _filter_valid(a, taps), _filter_valid(b, taps)
    vx = _filter_valid(a * a, taps) - ux * ux
    vy = _filter_valid(b * b, taps) - uy * uy
    vxy = _filter_valid(a * b, taps) - ux * uy
    c1, c2 = SSIM_K1**2, SSIM_K2**2               # data range 1
    return ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))


def ssim(reference, prediction):
    """Structural similarity (Wang et al. 2004 settings) on images mapped from [-1, 1] to [0, 1]."""
    ref, pred, single = _as_pair(reference, prediction)
    taps = _ssim_taps()
    if min(ref.shape[1:]) < len(taps):
        raise ValueError(f"SSIM needs images of at least {len(taps)}x{len(taps)} pixels, got {ref.shape[1:]}")
    out = np.empty(len(ref))
    for block in slice_chunks(*ref.shape):
        out[block] = ssim_map((ref[block] + 1.0) / 2.0, (pred[block] + 1.0) / 2.0).mean(axis=(1, 2))
    return _result(out, single)


def psnr(reference, prediction):
    """Peak signal-to-noise ratio in dB, 10 log10(1 / MSE) on images mapped to [0, 1] (inf when identical)."""
    ref, pred, single = _as_pair(reference, prediction)
    mse = np.mean(np.square((ref + 1.0) / 2.0 - (pred + 1.0) / 2.0), axis=(1, 2))
    with np.errstate(divide="ignore"):
        out = 10.0 * np.log10(1.0 / mse)
    return _result(out, single)


def _vif_taps(scale: int) -> np.ndarray:
    """1-D factor of MATLAB's fspecial('gaussian', N, N/5) for VIFp scale 1..4 (the 2-D window is separable)."""
    n = _vif_window(scale)
    x = np.arange(n, dtype=np.float64) - (n - 1) / 2
    taps = np.exp(-x * x / (2.0 * (n / 5.0) ** 2))
    # fspecial zeroes 2-D entries below eps * max; for these window sizes the smallest entry is > 1e-3 * max.
    return taps / taps.sum()


def _vif_block(ref: np.ndarray, dist: np.ndarray) -> np.ndarray:
    num = np.zeros(len(ref))
    den = np.zeros(len(ref))
    for scale in range(1, VIF_SCALES + 1):
        taps = _vif_taps(scale)
        if scale > 1:
            ref = _filter_valid(ref, taps)[:, ::2, ::2]
            dist = _filter_valid(dist, taps)[:, ::2, ::2]
        mu1, mu2 = _filter_valid(ref, taps), _filter_valid(dist, taps)
        sigma1_sq = np.maximum(_filter_valid(ref * ref, taps) - mu1 * mu1, 0.0)
        sigma2_sq = np.maximum(_filter_valid(dist * dist, taps) - mu2 * mu2, 0.0)
        sigma12 = _filter_valid(ref * dist, taps) - mu1 * mu2
        # The order of these corrections follows vifp_mscale.m exactly.
        g = sigma12 / (sigma1_sq + VIF_EPS)
        sv_sq = sigma2_sq - g * sigma12
        flat_ref = sigma1_sq < VIF_EPS
        g[flat_ref] = 0.0
        sv_sq[flat_ref] = sigma2_sq[flat_ref]
        sigma1_sq[flat_ref] = 0.0
        flat_dist = sigma2_sq < VIF_EPS
        g[flat_dist] = 0.0
        sv_sq[flat_dist] = 0.0
        negative = g < 0
        sv_sq[negative] = sigma2_sq[negative]
        g[negative] = 0.0
        sv_sq = np.maximum(sv_sq, VIF_EPS)
        num += np.sum(np.log10(1.0 + g * g * sigma1_sq / (sv_sq + VIF_SIGMA_NSQ)), axis=(1, 2))
        den += np.sum(np.log10(1.0 + sigma1_sq / VIF_SIGMA_NSQ), axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _vif_window(scale: int) -> int:
    return 2 ** (VIF_SCALES - scale + 1) + 1


def _vif_min_side() -> int:
    """Smallest image side for which the coarsest scale still has one 'valid' window (41 pixels)."""
    side = _vif_window(VIF_SCALES)
    for scale in range(VIF_SCALES, 1, -1):       # undo: 'valid' filter with this scale's window, then halve
        side = 2 * side - 1 + _vif_window(scale) - 1
    return side


def vif(reference, prediction):
    """Pixel-domain visual information fidelity (LIVE VIFp, 4 scales) on images mapped to [0, 255]."""
    ref, pred, single = _as_pair(reference, prediction)
    if min(ref.shape[1:]) < _vif_min_side():
        raise ValueError(f"VIF needs images of at least {_vif_min_side()}x{_vif_min_side()} pixels, "
                         f"got {ref.shape[1:]}")
    out = np.empty(len(ref))
    for block in slice_chunks(*ref.shape):
        out[block] = _vif_block((ref[block] + 1.0) * 127.5, (pred[block] + 1.0) * 127.5)
    return _result(out, single)


def lpips(reference, prediction, batch_size: int = 16):
    """LPIPS v0.1 (AlexNet) distance of grey images in [-1, 1], repeated to three channels."""
    from cycle_medgan_tf.evaluation.lpips import lpips_distance_rgb

    ref, pred, single = _as_pair(reference, prediction)
    step = max(1, int(batch_size))
    out = [lpips_distance_rgb(_grey_to_rgb(ref[i:i + step]), _grey_to_rgb(pred[i:i + step]), batch_size=step)
           for i in range(0, len(ref), step)]
    return _result(np.concatenate(out), single)


def _grey_to_rgb(images: np.ndarray) -> np.ndarray:
    return np.repeat(images[..., None].astype(np.float32), 3, axis=-1)


@dataclass(frozen=True)
class Metric:
    """A Table I metric: its function, display name and whether higher values are better."""

    key: str
    display: str
    function: Callable
    higher_is_better: bool
    convention: str


METRICS = (
    Metric("ssim", "SSIM", ssim, True,
           "Wang et al. 2004: images mapped to [0, 1], data range 1, 11x11 Gaussian sigma 1.5, K1 0.01, "
           "K2 0.03, population statistics, mean over the valid region (= skimage structural_similarity)"),
    Metric("psnr", "PSNR (dB)", psnr, True, "10 log10(1 / MSE) on images mapped to [0, 1]"),
    Metric("lpips", "LPIPS", lpips, False,
           "LPIPS v0.1 AlexNet, input in [-1, 1], grey repeated to 3 channels (Zhang et al. 2018)"),
    Metric("vif", "VIF (pixel domain)", vif, True,
           "VIFp (LIVE vifp_mscale.m): 4 scales, Gaussian windows 2^(5-s)+1 with sigma N/5, 'valid' "
           "filtering, dyadic downsampling, sigma_nsq 2, images mapped to [0, 255], reference first"),
)
METRIC_BY_KEY = {m.key: m for m in METRICS}


def compute_metrics(reference, prediction, batch_size: int = 16) -> dict[str, np.ndarray]:
    """All four metrics for a batch: ``{"ssim": (N,), "psnr": (N,), "lpips": (N,), "vif": (N,)}``."""
    ref = np.asarray(reference)
    if ref.ndim != 3:
        raise ValueError(f"compute_metrics expects a batch (N, H, W), got {ref.shape}")
    out = {}
    for metric in METRICS:
        if metric.key == "lpips":
            out[metric.key] = lpips(reference, prediction, batch_size=batch_size)
        else:
            out[metric.key] = metric.function(reference, prediction)
    return out
