"""T1-weighted head MR (arbitrary units, white matter about 1) and rigid in-plane motion corruption.

Contrast: tissue signals relative to white matter are drawn per subject (grey matter 0.62-0.74, CSF
0.18-0.28, cortical bone 0.02-0.06, diploe 0.75-0.95 (fatty marrow), skin/muscle 0.45-0.6, fat 1.15-1.35, lesion
0.35-0.5)
and mixed by tissue fraction; a smooth multiplicative receive-bias field (+-10 %) is applied.

Motion (Shaw et al., MIDL 2019; the method of TorchIO's RandomMotion): each subject has a motion severity
s in [0, 1], from a still patient (s = 0) to a restless one (s = 1), given by the caller (the default tasks
spread it evenly over consecutive subjects, so every cohort holds the whole mix). For each slice, 2-8
poses (rotation up to 2 + 10 s degrees and translation up to 2 + 10 s mm) occupy contiguous blocks of
phase-encode lines, acquired in sequential order at random change times. Each block of k-space comes from
the Fourier transform of the image moved to that block's pose. A central block of 45 - 35 s % of the lines,
holding the k-space centre, comes from the unmoved image, so the corrupted image stays aligned with the
motion-free one while ghosting and blurring grow with s. The phase-encode
direction is image axis 1 (left-right), so ghosts replicate along the columns. Both images become
magnitude images with Rician noise (independent draws; 1.5-3 % of white matter at 1 mm). The acquisition
matrix is the output grid: the 1 mm image is area-averaged to it before k-space corruption.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from cycle_medgan_tf.data.synth.anatomy import BUILD_PIXEL_MM, TISSUES, Anatomy
from cycle_medgan_tf.data.synth.fields import SmoothField, area_mean, between, mix, smooth_field_image

PHASE_ENCODE_AXIS = 1
SIGNAL_RANGES = {"gm": (0.62, 0.74), "wm": (1.0, 1.0), "csf": (0.18, 0.28), "cortical": (0.02, 0.06),
                 "diploe": (0.75, 0.95), "soft": (0.45, 0.6), "fat": (1.15, 1.35),
                 "lesion": (0.35, 0.5)}
N_POSES = (2, 8)
ROTATION_DEG = (2.0, 10.0)         # maximum rotation = a + b * severity
TRANSLATION_MM = (2.0, 10.0)       # maximum translation = a + b * severity
CENTRE_FRACTION = (0.45, -0.35)    # share of phase-encode lines kept from the reference pose = a + b * severity
NOISE_FRACTION = (0.015, 0.03)
TEMPLATE_CSF_GM_WM = (69.0 / 222.0, 166.0 / 222.0, 1.0)  # template T1 medians, white matter = 1
TEMPLATE_BLEND = 0.5


def _template_in_subject_contrast(t1: np.ndarray, signal: dict[str, float]) -> np.ndarray:
    """Map the template T1 (CSF ~0.31, GM ~0.75, WM 1 in template units) piecewise-linearly to the subject's
    CSF, GM and WM signals."""
    knots = np.array(TEMPLATE_CSF_GM_WM)
    targets = np.array([signal["csf"], signal["gm"], signal["wm"]])
    slopes_lo = (targets[1] - targets[0]) / (knots[1] - knots[0])
    slopes_hi = (targets[2] - targets[1]) / (knots[2] - knots[1])
    mapped = np.where(t1 < knots[1], targets[0] + (t1 - knots[0]) * slopes_lo, targets[1] + (t1 - knots[1]) * slopes_hi)
    return np.maximum(mapped, 0.0).astype(np.float32)


def simulate_t1(anatomy: Anatomy, rng: np.random.Generator) -> np.ndarray:
    """Noise-free T1-weighted slices (n, S, S) at 1 mm with a smooth bias field.

    Inside the template's brain mask the tissue-fraction image is blended half and half with the template
    T1 (mapped to the subject's contrast), which keeps its deep-grey-matter and cortical detail."""
    signal = {t: float(rng.uniform(*SIGNAL_RANGES[t])) for t in TISSUES}
    image = mix([signal[t] for t in TISSUES], anatomy.fractions)
    weight = TEMPLATE_BLEND * anatomy.brain
    image = (1.0 - weight) * image + weight * _template_in_subject_contrast(anatomy.t1, signal)
    bias = SmoothField(rng, 150.0, 400.0, n_waves=4)
    field = np.stack([between(smooth_field_image(bias, z, anatomy.size, BUILD_PIXEL_MM), 0.9, 1.1)
                      for z in anatomy.z_mm])
    return (image * field).astype(np.float32)


def _moved(image: np.ndarray, angle_deg: float, shift_px: np.ndarray) -> np.ndarray:
    """The slice rotated by ``angle_deg`` about its centre and shifted by ``shift_px`` (rows, cols)."""
    a = np.deg2rad(angle_deg)
    rotation = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    centre = (np.array(image.shape) - 1) / 2.0
    # output pixel p samples input at R^T (p - centre - shift) + centre
    inverse = rotation.T
    offset = centre - inverse @ (centre + shift_px)
    return ndi.affine_transform(image, inverse, offset=offset, order=1, mode="constant", cval=0.0)


def _pose_blocks(n_lines: int, n_poses: int, centre_fraction: float,
                 rng: np.random.Generator) -> list[tuple[int, int, bool]]:
    """Contiguous phase-encode blocks (start, stop, is_reference): a reference block of ``centre_fraction``
    of the lines that holds the k-space centre, the other lines cut at random into ``n_poses - 1`` blocks."""
    centre_line = n_lines // 2  # k = 0 after fftshift
    width = int(np.clip(round(centre_fraction * n_lines), 1, n_lines))
    c0 = int(np.clip(centre_line - int(rng.integers(0, width)), 0, n_lines - width))
    c1 = c0 + width
    outside = [i for i in range(1, n_lines) if not c0 <= i <= c1]
    n_cuts = min(max(n_poses - 1 - (c0 > 0) - (c1 < n_lines), 0), len(outside))
    cuts = sorted(set(rng.choice(outside, size=n_cuts, replace=False).tolist()) | {c0, c1} - {0, n_lines})
    edges = [0] + cuts + [n_lines]
    return [(a, b, a == c0) for a, b in zip(edges[:-1], edges[1:])]


def corrupt_slice(image: np.ndarray, rng: np.random.Generator, max_rotation_deg: float,
                  max_translation_px: float, centre_fraction: float = 0.3) -> np.ndarray:
    """Complex image with rigid-motion k-space corruption along :data:`PHASE_ENCODE_AXIS` (see module doc)."""
    n_lines = image.shape[PHASE_ENCODE_AXIS]
    n_poses = int(rng.integers(N_POSES[0], N_POSES[1] + 1))
    kspace = np.fft.fftshift(np.fft.fft2(image))
    result = kspace.copy()
    for start, stop, reference in _pose_blocks(n_lines, n_poses, centre_fraction, rng):
        if reference:
            continue  # the centre block keeps the unmoved pose
        angle = rng.uniform(-max_rotation_deg, max_rotation_deg)
        shift = rng.uniform(-max_translation_px, max_translation_px, size=2)
        moved = np.fft.fftshift(np.fft.fft2(_moved(image, angle, shift)))
        block = [slice(None), slice(None)]
        block[PHASE_ENCODE_AXIS] = slice(start, stop)
        result[tuple(block)] = moved[tuple(block)]
    return np.fft.ifft2(np.fft.ifftshift(result))


def rician(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Magnitude of a (possibly complex) image plus complex Gaussian noise of std ``sigma`` per channel."""
    noise = rng.normal(0.0, sigma, size=image.shape + (2,))
    return np.hypot(image.real + noise[..., 0], image.imag + noise[..., 1]).astype(np.float32)


def simulate_mr_pair(anatomy: Anatomy, rng: np.random.Generator, size: int, severity: float,
                     corrupted: bool = True, clean: bool = True) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(motion-corrupted, motion-free) magnitude slices (n, size, size); either may be skipped (None).

    The image is formed at 1 mm and area-averaged to the acquisition matrix ``size`` (pixel 256/size mm),
    where k-space is corrupted and noise added (noise std scaled as averaging 1 mm noise would). The
    random draws do not depend on which outputs are requested.
    """
    factor = anatomy.size // size
    t1 = area_mean(simulate_t1(anatomy, rng), factor)
    pixel_mm = BUILD_PIXEL_MM * factor
    if not 0.0 <= severity <= 1.0:
        raise ValueError(f"motion severity must be in [0, 1], got {severity}")
    max_rotation = ROTATION_DEG[0] + ROTATION_DEG[1] * severity
    max_translation_px = (TRANSLATION_MM[0] + TRANSLATION_MM[1] * severity) / pixel_mm
    centre_fraction = CENTRE_FRACTION[0] + CENTRE_FRACTION[1] * severity
    sigma = rng.uniform(*NOISE_FRACTION) / factor
    motion_rng, noise_rng_a, noise_rng_b = rng.spawn(3)
    moved = None
    if corrupted:
        moved = np.stack([rician(corrupt_slice(s, motion_rng, max_rotation, max_translation_px, centre_fraction), sigma,
                                 noise_rng_a) for s in t1])
    still = rician(t1, sigma, noise_rng_b) if clean else None
    return moved, still
