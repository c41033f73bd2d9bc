"""Tissue-aware metrics beside Table I's four: they look at the head, not at the air around it.

Table I's SSIM and PSNR are computed over the whole slice in the storage window (CT: -1000..2000 HU), where most
pixels are air and soft tissue spans a few grey levels. These metrics take images in **physical units**
(N, H, W) and restrict themselves to a head mask derived from the *target* alone:

Head mask (per slice): the target smoothed by a Gaussian of ``MASK_SMOOTH_PX`` pixels, thresholded (CT: above
``HEAD_THRESHOLD_HU`` = -500 HU, halfway between air and soft tissue; other domains: above ``lo + MASK_FRACTION
* (hi - lo)`` of the domain window), then its largest 8-connected component with holes filled. A slice whose
mask is empty gives NaN (left out of every statistic).

Masked SSIM: both images mapped linearly through a window to [0, 1] and clipped; the SSIM map of Table I's SSIM
(11x11 Gaussian, sigma 1.5, K1 0.01, K2 0.03, data range 1, population statistics, valid region: 5 pixels cropped
per side) averaged over the mask pixels inside the valid region. Masked PSNR: ``10 log10(1 / MSE)`` with the MSE
over the mask pixels of the same windowed images (inf when they agree exactly).

CT targets (``ct_*`` conventions of synthetic-CT work):

- ``mae_hu`` / ``me_hu``: mean absolute / mean signed error (prediction - target) in HU over the mask;
- ``ssim_brain`` / ``psnr_brain``: masked SSIM / PSNR in the brain window ``BRAIN_WINDOW_HU`` (0..80 HU);
- ``ssim_bone`` / ``psnr_bone``: the same in the bone window ``BONE_WINDOW_HU`` (-500..1500 HU, W 2000 / L 500);
- ``dice_bone``: Dice of {HU >= ``BONE_THRESHOLD_HU``} (300 HU) between prediction and target inside the mask,
  NaN when neither has bone there.

Other targets (MR, PET): ``ssim_mask`` / ``psnr_mask``, masked SSIM / PSNR in the domain's own window.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import ndimage

from cycle_medgan_tf.evaluation.metrics import slice_chunks, ssim_map, ssim_margin

HEAD_THRESHOLD_HU = -500.0
MASK_FRACTION = 0.1
MASK_SMOOTH_PX = 1.0
BRAIN_WINDOW_HU = (0.0, 80.0)
BONE_WINDOW_HU = (-500.0, 1500.0)
BONE_THRESHOLD_HU = 300.0
_UNIT_TOLERANCE = 0.25        # values may leave the window by this fraction of its width ...
_UNIT_OUTLIER_FRACTION = 0.01  # ... in at most this fraction of the pixels


@dataclass(frozen=True)
class TissueMetric:
    """A tissue-aware column: key, display name, which way is better ("higher", "lower", "zero"), decimals."""

    key: str
    display: str
    better: str
    decimals: int
    convention: str


def _windowed(kind: str, window_name: str, window: Sequence[float] | None) -> str:
    where = ("the domain window [lo, hi]" if window is None
             else f"the {window_name} window {window[0]:g}..{window[1]:g} HU")
    how = ("Table I's SSIM map averaged over the head-mask pixels of the valid region" if kind == "SSIM"
           else "10 log10(1 / MSE) with the MSE over the head-mask pixels")
    return f"masked {kind}: images in {where} mapped to [0, 1] and clipped; {how}"


CT_METRICS = (
    TissueMetric("mae_hu", "MAE (HU)", "lower", 1, "mean |prediction - target| in HU over the head mask"),
    TissueMetric("me_hu", "ME (HU)", "zero", 1, "mean (prediction - target) in HU over the head mask"),
    TissueMetric("ssim_brain", "SSIM brain", "higher", 4, _windowed("SSIM", "brain", BRAIN_WINDOW_HU)),
    TissueMetric("psnr_brain", "PSNR brain (dB)", "higher", 2, _windowed("PSNR", "brain", BRAIN_WINDOW_HU)),
    TissueMetric("ssim_bone", "SSIM bone", "higher", 4, _windowed("SSIM", "bone", BONE_WINDOW_HU)),
    TissueMetric("psnr_bone", "PSNR bone (dB)", "higher", 2, _windowed("PSNR", "bone", BONE_WINDOW_HU)),
    TissueMetric("dice_bone", "Dice bone", "higher", 4,
                 f"Dice of HU >= {BONE_THRESHOLD_HU:g} between prediction and target inside the head mask"),
)
MASKED_METRICS = (
    TissueMetric("ssim_mask", "SSIM head", "higher", 4, _windowed("SSIM", "domain", None)),
    TissueMetric("psnr_mask", "PSNR head (dB)", "higher", 2, _windowed("PSNR", "domain", None)),
)
TISSUE_METRIC_BY_KEY = {m.key: m for m in CT_METRICS + MASKED_METRICS}
MASK_CONVENTION = (f"head mask from the target: Gaussian smoothing sigma {MASK_SMOOTH_PX:g} px, threshold "
                   f"(CT: {HEAD_THRESHOLD_HU:g} HU; other domains: lo + {MASK_FRACTION:g} (hi - lo) of the window), "
                   "largest 8-connected component, holes filled")


def _is_modality(domain: str, modality: str) -> bool:
    return re.search(rf"(^|[^a-z]){modality}([^a-z]|$)", domain.lower()) is not None


def modality(domain: str) -> str:
    """"ct", "pet" or "grey" from a domain name such as "CT", "FDG-PET" or "MR_motion"."""
    if _is_modality(domain, "ct"):
        return "ct"
    if _is_modality(domain, "pet"):
        return "pet"
    return "grey"


def metrics_for(domain: str) -> tuple[TissueMetric, ...]:
    """The tissue-aware columns for a target domain: the CT set for CT, masked SSIM/PSNR otherwise."""
    return CT_METRICS if modality(domain) == "ct" else MASKED_METRICS


def _check_window(window: Sequence[float]) -> tuple[float, float]:
    lo, hi = (float(v) for v in window)
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"window must be two finite numbers lo < hi, got {list(window)}")
    return lo, hi


def check_physical_units(target: np.ndarray, domain: str, window: Sequence[float]) -> None:
    """Raise ValueError when the target does not look like physical units of its window (e.g. model range)."""
    lo, hi = _check_window(window)
    if modality(domain) == "ct" and lo < -1.5 and np.max(np.abs(target)) <= 1.0 + 1e-6:
        raise ValueError("the CT target lies entirely in [-1, 1]: pass HU (physical units), not model range")
    margin = _UNIT_TOLERANCE * (hi - lo)
    outside = np.mean((target < lo - margin) | (target > hi + margin))
    if outside > _UNIT_OUTLIER_FRACTION:
        raise ValueError(f"{100 * outside:.1f}% of the {domain} target lies far outside its window "
                         f"[{lo:g}, {hi:g}]: pass physical units")


def head_mask(target, domain: str, window: Sequence[float]) -> np.ndarray:
    """Boolean (N, H, W) head mask derived from the target (see the module docstring)."""
    target = np.asarray(target, dtype=np.float64)
    lo, hi = _check_window(window)
    threshold = HEAD_THRESHOLD_HU if modality(domain) == "ct" else lo + MASK_FRACTION * (hi - lo)
    smooth = ndimage.gaussian_filter(target, sigma=(0.0, MASK_SMOOTH_PX, MASK_SMOOTH_PX), mode="nearest")
    masks = np.zeros(target.shape, dtype=bool)
    for i, foreground in enumerate(smooth > threshold):
        labels, count = ndimage.label(foreground, structure=np.ones((3, 3), dtype=bool))
        if count:
            largest = 1 + int(np.argmax(np.bincount(labels.ravel())[1:]))
            masks[i] = ndimage.binary_fill_holes(labels == largest)
    return masks


def to_unit_window(images, window: Sequence[float]) -> np.ndarray:
    """Physical values mapped linearly through ``window`` to [0, 1], clipped (float64)."""
    lo, hi = _check_window(window)
    return np.clip((np.asarray(images, dtype=np.float64) - lo) / (hi - lo), 0.0, 1.0)


def masked_ssim(target, prediction, mask, window: Sequence[float]) -> np.ndarray:
    """Per-slice SSIM map (Table I's settings) in ``window`` averaged over the mask pixels of the valid region."""
    m = ssim_margin()
    inner = np.asarray(mask, dtype=bool)[:, m:-m, m:-m]
    out = np.full(len(inner), np.nan)
    for block in slice_chunks(*np.shape(target)):
        smap = ssim_map(to_unit_window(target[block], window), to_unit_window(prediction[block], window))
        counts = inner[block].sum(axis=(1, 2))
        sums = np.where(inner[block], smap, 0.0).sum(axis=(1, 2))
        out[block] = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return out


def masked_psnr(target, prediction, mask, window: Sequence[float]) -> np.ndarray:
    """Per-slice ``10 log10(1 / MSE)`` over the mask pixels of images in ``window`` mapped to [0, 1]."""
    mask = np.asarray(mask, dtype=bool)
    squared = np.square(to_unit_window(target, window) - to_unit_window(prediction, window))
    counts = mask.sum(axis=(1, 2))
    mse = np.where(mask, squared, 0.0).sum(axis=(1, 2)) / np.maximum(counts, 1)
    with np.errstate(divide="ignore"):
        return np.where(counts > 0, 10.0 * np.log10(1.0 / mse), np.nan)


def masked_errors(target, prediction, mask) -> tuple[np.ndarray, np.ndarray]:
    """Per-slice (mean absolute error, mean signed error prediction - target) over the mask, in input units."""
    mask = np.asarray(mask, dtype=bool)
    diff = np.asarray(prediction, dtype=np.float64) - np.asarray(target, dtype=np.float64)
    counts = mask.sum(axis=(1, 2))
    with np.errstate(invalid="ignore"):
        mae = np.where(mask, np.abs(diff), 0.0).sum(axis=(1, 2)) / counts
        me = np.where(mask, diff, 0.0).sum(axis=(1, 2)) / counts
    return np.where(counts > 0, mae, np.nan), np.where(counts > 0, me, np.nan)


def bone_dice(target, prediction, mask, threshold_hu: float = BONE_THRESHOLD_HU) -> np.ndarray:
    """Per-slice Dice of {HU >= threshold} inside the mask; NaN when neither image has bone there."""
    mask = np.asarray(mask, dtype=bool)
    bone_t = (np.asarray(target) >= threshold_hu) & mask
    bone_p = (np.asarray(prediction) >= threshold_hu) & mask
    total = bone_t.sum(axis=(1, 2)) + bone_p.sum(axis=(1, 2))
    overlap = (bone_t & bone_p).sum(axis=(1, 2))
    return np.where(total > 0, 2.0 * overlap / np.maximum(total, 1), np.nan)


def tissue_metrics(target, prediction, domain: str, window) -> dict[str, np.ndarray]:
    """Per-slice tissue-aware metrics of (N, H, W) images in physical units (keys: ``metrics_for(domain)``)."""
    target = np.asarray(target, dtype=np.float64)
    prediction = np.asarray(prediction, dtype=np.float64)
    if target.shape != prediction.shape or target.ndim != 3:
        raise ValueError(f"target {target.shape} and prediction {prediction.shape} must both be (N, H, W)")
    if min(target.shape[1:]) <= 2 * ssim_margin():
        raise ValueError(f"tissue metrics need images larger than {2 * ssim_margin()} pixels, got {target.shape}")
    if not (np.all(np.isfinite(target)) and np.all(np.isfinite(prediction))):
        raise ValueError("images contain NaN or Inf values")
    check_physical_units(target, domain, window)
    mask = head_mask(target, domain, window)
    if modality(domain) != "ct":
        return {"ssim_mask": masked_ssim(target, prediction, mask, window),
                "psnr_mask": masked_psnr(target, prediction, mask, window)}
    mae, me = masked_errors(target, prediction, mask)
    return {"mae_hu": mae, "me_hu": me,
            "ssim_brain": masked_ssim(target, prediction, mask, BRAIN_WINDOW_HU),
            "psnr_brain": masked_psnr(target, prediction, mask, BRAIN_WINDOW_HU),
            "ssim_bone": masked_ssim(target, prediction, mask, BONE_WINDOW_HU),
            "psnr_bone": masked_psnr(target, prediction, mask, BONE_WINDOW_HU),
            "dice_bone": bone_dice(target, prediction, mask)}
