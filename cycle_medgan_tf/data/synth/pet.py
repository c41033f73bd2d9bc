"""FDG-PET of a subject's head: emission physics and OSEM reconstruction, in relative activity (WM = 1).

Activity per tissue: grey matter 3-4.5 (per subject) with a smooth +-12 % regional variation and, in some
subjects, one or two hypometabolic regions (25-50 % lower grey-matter uptake); white matter 1; CSF 0.05;
skin/muscle 0.4; fat 0.15; bone 0.05-0.3; lesion 0.3-0.7 (hypometabolic). Linear attenuation 0.096/cm for soft
tissue, 0.15/cm for bone.

Acquisition and reconstruction happen on a PET grid of 2 mm pixels (or the output pixel size when that is
coarser), as scanners do: the activity is blurred by a 4-5.5 mm FWHM point-spread function, forward
projected (parallel beam, as many angles as grid columns), attenuated, scaled to 5e5-3e6 true counts per
slice (per subject; busier slices get more), a smooth scatter background (25-40 % scatter fraction) and
uniform randoms (10-25 % of prompts) are added and the prompts drawn from a Poisson distribution. The
reconstruction is OSEM (3 iterations x 16 subsets) with the scatter and randoms expectations in the model,
then a 2.5-4 mm FWHM Gaussian post-filter, and a resampling to the output grid. Attenuation-corrected (AC)
PET has the attenuation factors in the system model; non-attenuation-corrected (NAC) PET, the input of
PET -> CT synthesis for attenuation correction, leaves them out, so it reconstructs the attenuated activity:
a dark head centre and a bright rim, at about a fifth to a half of the AC values. Both come from the same
prompts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from cycle_medgan_tf.data.synth.anatomy import BUILD_PIXEL_MM, BUILD_SIZE, TISSUES, Anatomy
from cycle_medgan_tf.data.synth.fields import (SmoothField, area_mean, fwhm_to_sigma_px, gaussian_blur_2d, mix,
                                              smooth_field_image)
from cycle_medgan_tf.data.synth.projector import get_projector

MU_TISSUE_PER_MM = 0.0096
MU_BONE_PER_MM = 0.015
PET_PIXEL_MM = 2.0
N_ITERATIONS, N_SUBSETS = 3, 16
SCATTER_KERNEL_MM = 35.0


@dataclass(frozen=True)
class PetParameters:
    """One subject's uptake and acquisition settings."""

    gm_activity: float
    bone_activity: float
    lesion_activity: float
    psf_fwhm_mm: float
    trues_per_slice: float
    scatter_fraction: float
    randoms_fraction: float
    post_filter_fwhm_mm: float


def random_parameters(rng: np.random.Generator) -> PetParameters:
    """Draw a subject's PET settings from the ranges in the module docstring."""
    return PetParameters(
        gm_activity=float(rng.uniform(3.0, 4.5)),
        bone_activity=float(rng.uniform(0.05, 0.3)),
        lesion_activity=float(rng.uniform(0.3, 0.7)),
        psf_fwhm_mm=float(rng.uniform(4.0, 5.5)),
        trues_per_slice=float(np.exp(rng.uniform(np.log(5e5), np.log(3e6)))),
        scatter_fraction=float(rng.uniform(0.25, 0.40)),
        randoms_fraction=float(rng.uniform(0.10, 0.25)),
        post_filter_fwhm_mm=float(rng.uniform(2.5, 4.0)),
    )


def _grey_matter_modulation(anatomy: Anatomy, rng: np.random.Generator) -> np.ndarray:
    """Multiplicative grey-matter uptake map (n, S, S): smooth +-12 % variation and hypometabolic regions."""
    size = anatomy.size
    axis = (np.arange(size) + 0.5) * BUILD_PIXEL_MM - size * BUILD_PIXEL_MM / 2.0
    y, x = axis[:, None], axis[None, :]
    field = SmoothField(rng, 30.0, 100.0)
    modulation = np.stack([1.0 + 0.12 * np.clip(smooth_field_image(field, z, size, BUILD_PIXEL_MM) / 2.0, -1.0, 1.0)
                           for z in anatomy.z_mm])
    n_regions = int(rng.choice([0, 0, 1, 2], p=[0.35, 0.25, 0.25, 0.15]))
    gm = anatomy.fraction("gm")
    for _ in range(n_regions):
        candidates = np.argwhere(gm > 0.6)
        if len(candidates) == 0:
            break
        k, r, c = candidates[rng.integers(len(candidates))]
        radius = rng.uniform(10.0, 20.0)
        depth = rng.uniform(0.25, 0.5)
        dz = (anatomy.z_mm - anatomy.z_mm[k])[:, None, None]
        dist2 = (y - axis[r]) ** 2 + (x - axis[c]) ** 2 + dz ** 2
        modulation *= 1.0 - depth * np.exp(-dist2 / (2.0 * radius ** 2))
    return modulation.astype(np.float32)


def activity_and_attenuation(anatomy: Anatomy, params: PetParameters,
                             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """True activity (relative, WM = 1) and linear attenuation (1/mm) at 1 mm: two (n, S, S) arrays."""
    uptake = {"gm": params.gm_activity, "wm": 1.0, "csf": 0.05, "cortical": params.bone_activity,
              "diploe": params.bone_activity, "soft": 0.4, "fat": 0.15, "lesion": params.lesion_activity}
    f = anatomy.fractions
    activity = mix([uptake[t] for t in TISSUES], f)
    activity += (params.gm_activity * (_grey_matter_modulation(anatomy, rng) - 1.0)) * anatomy.fraction("gm")
    mu = mix([MU_BONE_PER_MM if t in ("cortical", "diploe") else MU_TISSUE_PER_MM for t in TISSUES], f)
    return activity.astype(np.float32), mu.astype(np.float32)


def pet_grid(size: int) -> tuple[int, float]:
    """(pixels, pixel mm) of the PET reconstruction grid for an output of ``size`` pixels over 256 mm."""
    pixel = max(PET_PIXEL_MM, BUILD_SIZE * BUILD_PIXEL_MM / size)
    return int(round(BUILD_SIZE * BUILD_PIXEL_MM / pixel)), pixel


def acquire_and_reconstruct(activity: np.ndarray, mu: np.ndarray, params: PetParameters,
                            rng: np.random.Generator, n_grid: int, pixel_mm: float,
                            attenuation_corrected: bool = True) -> np.ndarray:
    """Simulate noisy prompts from activity/attenuation already on the PET grid and reconstruct with OSEM.

    ``activity`` and ``mu`` are (n, N, N) on the PET grid; returns (n, N, N) relative activity (AC) or
    attenuated relative activity (NAC).
    """
    proj = get_projector(n_grid, pixel_mm, n_grid, N_SUBSETS)
    blurred = gaussian_blur_2d(activity, fwhm_to_sigma_px(params.psf_fwhm_mm, pixel_mm))
    emission = proj.forward(proj.to_pixels(blurred))
    attenuation = np.exp(-proj.forward(proj.to_pixels(mu)))
    trues_expected = attenuation * emission
    per_slice = trues_expected.sum(axis=0)
    scale = params.trues_per_slice / max(per_slice.mean(), 1e-12)  # counts per unit line integral
    trues = scale * trues_expected
    scatter_shape = ndi.gaussian_filter1d(
        (scale * emission).reshape(proj.n_angles, n_grid, -1), SCATTER_KERNEL_MM / pixel_mm, axis=1,
        mode="constant").reshape(trues.shape)
    scatter_total = trues.sum(axis=0) * params.scatter_fraction / (1.0 - params.scatter_fraction)
    scatter = scatter_shape * (scatter_total / np.maximum(scatter_shape.sum(axis=0), 1e-12))
    randoms_total = (trues.sum(axis=0) + scatter_total) * params.randoms_fraction / (1.0 - params.randoms_fraction)
    randoms = np.broadcast_to(randoms_total / trues.shape[0], trues.shape)
    prompts = rng.poisson(trues + scatter + randoms).astype(np.float64)
    background = scatter + randoms
    gain = scale * attenuation if attenuation_corrected else np.full_like(attenuation, scale)
    return osem(proj, prompts, gain, background, N_ITERATIONS)


def osem(proj, prompts: np.ndarray, gain: np.ndarray, background: np.ndarray, n_iterations: int) -> np.ndarray:
    """OSEM for prompts ~ Poisson(gain * A x + background); all sinograms (rows, n). Returns (n, N, N)."""
    x = np.ones((proj.n_pixels, prompts.shape[1]))
    rows = [proj.subset_rows(s) for s in range(proj.n_subsets)]
    sensitivity = [np.maximum(proj.back(gain[r], s), 1e-12) for s, r in enumerate(rows)]
    for _ in range(n_iterations):
        for s, r in enumerate(rows):
            expected = gain[r] * proj.forward(x, s) + background[r]
            x *= proj.back(gain[r] * prompts[r] / expected, s) / sensitivity[s]
    return proj.to_images(x)


def resample(images: np.ndarray, size: int) -> np.ndarray:
    """Resample (n, N, N) images covering the 256 mm field to (n, size, size): block mean or linear zoom."""
    n_grid = images.shape[-1]
    if size == n_grid:
        return images.astype(np.float32)
    if size < n_grid:
        return area_mean(images, n_grid // size)
    zoomed = ndi.zoom(images, (1, size / n_grid, size / n_grid), order=1, mode="nearest", grid_mode=True)
    return zoomed.astype(np.float32)


def simulate_pet(anatomy: Anatomy, rng: np.random.Generator, size: int,
                 attenuation_corrected: bool = True) -> np.ndarray:
    """FDG-PET slices (n, size, size) for one subject's anatomy: relative activity (AC) or its NAC image."""
    params = random_parameters(rng)
    activity, mu = activity_and_attenuation(anatomy, params, rng)
    n_grid, pixel_mm = pet_grid(size)
    factor = int(round(pixel_mm / BUILD_PIXEL_MM))
    recon = acquire_and_reconstruct(area_mean(activity, factor), area_mean(mu, factor), params, rng,
                                    n_grid, pixel_mm, attenuation_corrected)
    recon = gaussian_blur_2d(recon, fwhm_to_sigma_px(params.post_filter_fwhm_mm, pixel_mm))
    return np.maximum(resample(recon, size), 0.0)
