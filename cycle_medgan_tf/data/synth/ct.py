"""Head CT in Hounsfield units from a subject's tissue fractions.

Per subject, tissue values are drawn from: air -1000, grey matter 36-44, white matter 22-30, CSF 2-12,
fat -110..-80, skin/muscle 30-60, diploe 350-700, cortical bone 1100-1700 HU, lesion 8-18 HU
(hypodense). Voxels mix them by their
tissue fractions (partial volume), the image is blurred (Gaussian, sigma 0.8 mm) and noise with the ramp
(|f|, Hann-apodised) power spectrum of filtered back-projection is added, 3-6 HU standard deviation at 1 mm.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

from cycle_medgan_tf.data.synth.anatomy import BUILD_PIXEL_MM, TISSUES, Anatomy
from cycle_medgan_tf.data.synth.fields import gaussian_blur_2d, mix

AIR_HU = -1000.0
TISSUE_HU = {"gm": (36.0, 44.0), "wm": (22.0, 30.0), "csf": (2.0, 12.0), "cortical": (1100.0, 1700.0),
             "diploe": (350.0, 700.0), "soft": (30.0, 60.0), "fat": (-110.0, -80.0),
             "lesion": (8.0, 18.0)}
BLUR_SIGMA_MM = 0.8
NOISE_HU = (3.0, 6.0)


def ramp_noise(rng: np.random.Generator, shape: tuple[int, ...], std: float) -> np.ndarray:
    """Noise with a ramp-shaped (|f| times a Hann window) power spectrum over the last two axes, given std."""
    white = rng.standard_normal(shape, dtype=np.float32)
    fy = np.fft.fftfreq(shape[-2])[:, None]
    fx = np.fft.rfftfreq(shape[-1])[None, :]
    radius = np.sqrt(fy ** 2 + fx ** 2) / 0.5
    amplitude = np.sqrt(radius) * np.where(radius < 1.0, 0.5 * (1.0 + np.cos(np.pi * radius)), 0.0)
    noise = scipy.fft.irfft2(scipy.fft.rfft2(white) * amplitude.astype(np.float32), s=shape[-2:])
    noise /= noise.std(axis=(-2, -1), keepdims=True) + 1e-12
    return (std * noise).astype(np.float32)


def simulate_ct(anatomy: Anatomy, rng: np.random.Generator) -> np.ndarray:
    """CT slices (n, S, S) in HU at the anatomy's 1 mm grid."""
    values = np.array([rng.uniform(*TISSUE_HU[name]) for name in TISSUES], dtype=np.float32)
    fractions = anatomy.fractions
    air = 1.0 - fractions.sum(axis=0)
    hu = mix(values, fractions) + np.float32(AIR_HU) * air
    hu = gaussian_blur_2d(hu, BLUR_SIGMA_MM / BUILD_PIXEL_MM)
    return hu + ramp_noise(rng, hu.shape, rng.uniform(*NOISE_HU))
