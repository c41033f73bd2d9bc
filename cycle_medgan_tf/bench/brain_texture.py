"""Soft tissue inside the brain of translated CT, and how much the cycle leans on a hidden code.

    python -m cycle_medgan_tf.bench.brain_texture --data=STORE --runs=NAME=RUN_DIR[,NAME=RUN_DIR] [--noise=0.01]

For each run (its exported ``a2b`` and ``b2a`` translators) on the paired validation slices of a PET -> CT
store, one JSON line:

- ``brain_*``: inside the brain (target 0..80 HU within the target's head mask, eroded by one pixel): the HU
  standard deviation of prediction and target, the MAE in HU, and the standard deviation of the 4-neighbour
  Laplacian of HU (high-frequency energy) of both, with its ratio prediction / target;
- ``interior_*``: the same spread and MAE in the brain's interior (the brain mask eroded by ``INTERIOR_PX`` more
  pixels). Next to the skull a prediction whose inner bone edge is a pixel off puts hundreds of HU into the brain
  mask, so ``brain_std_hu`` mixes the skull's placement with the brain's texture; the interior separates them;
- ``structure_corr``: does the brain show the target's soft tissue where the target has it (ventricles, sulci,
  grey against white matter)? Per slice, prediction and target are smoothed inside the interior (normalised
  convolution, Gaussian of ``STRUCTURE_SIGMA_PX``, so neither bone nor the skull's edge bleeds in) and correlated
  over it, and the correlations averaged over slices. An input-blind guess (another subject's brain) or a flat
  brain scores about 0, the target blurred close to 1;
- ``lattice_share``: how much of the interior's fine detail is a pixel lattice (the checkerboard or stripes of
  period 2 that a stride-2 transposed convolution leaves; Odena et al. 2016, Distill)? The detail (image minus its
  1 px Gaussian blur) is demodulated by each of the three period-2 patterns ((-1)^(x+y), (-1)^x, (-1)^y) and
  smoothed by ``LATTICE_SIGMA_PX`` inside the interior, which keeps a lattice whose phase holds over a few pixels
  and averages texture and noise away; the share is that lattice energy over the detail's energy, per slice,
  averaged. A pure lattice gives 1; on the tuning store's 96 validation slices the real CT scores 0.06, the real CT
  with 5 HU of noise 0.08, the look-up 0.05, the faithful CycleGAN's checkerboard 0.12;
- ``streak_bias``: is the interior's detail drawn along one axis (streaks)? The detail (image, clipped to the brain
  window, minus its ``STREAK_SIGMA_PX`` Gaussian blur) is differenced across columns and across rows inside the
  interior; per slice ``(E_x - E_y) / (E_x + E_y)`` of the two energies, averaged: 0 for detail without a
  direction, +1 for vertical streaks (varying only across columns), -1 for horizontal ones. The brain's own
  anatomy is not isotropic (the interhemispheric fissure runs vertically): on the tuning store the real CT scores
  0.18, the look-up 0.21, the real CT with 3 HU vertical stripes of period 4 pixels added 0.28. Blind to streaks
  at 45 degrees, whose energy is shared between rows and columns (benchmarks/RESULTS.md, stage 11(b));
- ``ventricle_contrast``, ``grey_white_contrast``: are the ventricles darker than the white matter, and the grey
  matter brighter, by as much as in the target? Interior pixels are classed by the target smoothed inside the
  interior (as for ``structure_corr``) at ``TISSUE_SPLITS_HU``, the midpoints between the phantom's CSF, white and
  grey matter values (``data/synth/ct.py``); per slice, the prediction's mean HU (clipped to the brain window, so a
  stray bone pixel counts as 80 HU, not 1,000) of the brighter class minus that of the darker, summed over slices
  with weights min(class sizes), as a share of the same for the target. The target scores 1, a flat brain about 0,
  the pattern drawn in reverse below 0; on the tuning store's 96 validation slices the look-up (another subject's
  brain, chosen alike) scores 0.29 and 0.25;
- ``cycle_*``: the mean |F(G(x)) - x| in model range over the head, with G(x) as it is and with Gaussian noise of
  std ``--noise`` (model range) added to G(x) before F, and their ratio. CycleGAN can satisfy its cycle loss by
  hiding its input in a low-amplitude signal in G(x) (Chu et al. 2017, "CycleGAN, a master of steganography");
  noise far below what a reader sees then spoils the reconstruction.

- ``input_noise_*``: is the brain texture the PET's own pixel noise passed on (and hidden for the cycle)? The
  translation of the PET smoothed by a Gaussian of ``--smooth_px``: its Laplacian std in the brain and the per-slice
  correlation of its Laplacian with that of G(x) (near 1: the texture does not come from the input's noise); and
  the correlation of the reconstruction's Laplacian with the input's, from G(x) and from G(smoothed x) (equal: the
  input's pixel noise does not pass through the CT).

The ``target`` line gives the same numbers for the real CT (the probes do not apply); the ``lookup`` line those of
the input-blind look-up row (``evaluation.lookup``: the training CT most like each target), the case the brain
figures must reject: it has a real brain's texture, in another subject's places. Every figure is a mean over
the validation slices. It is a diagnostic for the quick profile's budget, not part of Table I.
"""

from __future__ import annotations

import json

import numpy as np
from absl import flags
from scipy import ndimage

from cycle_medgan_tf.cli import fail, run_app

FLAGS = flags.FLAGS
BRAIN_HU = (0.0, 80.0)
MIN_BRAIN_PIXELS = 20          # a slice with fewer brain pixels is left out
INTERIOR_PX = 2                # the interior: the brain mask eroded by this many more pixels
STRUCTURE_SIGMA_PX = 1.0       # smoothing inside the interior before the structure correlation
LATTICE_SIGMA_PX = 2.0         # how far a lattice's phase must hold to count (lattice_share)
STREAK_SIGMA_PX = 2.0          # the detail's scale for streak_bias (image minus this blur)
TISSUE_SPLITS_HU = (17.0, 33.0)  # CSF 2-12 | white matter 22-30 | grey matter 36-44 HU (data/synth/ct.py)
MIN_CLASS_PIXELS = 3           # a slice counts towards a contrast when both its classes have this many pixels


def define_flags() -> None:
    flags.DEFINE_string("data", None, "A PET -> CT slice store (paired validation set).")
    flags.DEFINE_string("runs", None, "NAME=RUN_DIR[,NAME=RUN_DIR...]: runs with a2b and b2a exports.")
    flags.DEFINE_float("noise", 0.01, "Std of the noise added to G(x) in model range [-1, 1] for the cycle probe.",
                       lower_bound=0.0)
    flags.DEFINE_integer("max_slices", None, "Use at most this many validation slices (evenly spaced).",
                         lower_bound=1)
    flags.DEFINE_float("smooth_px", 1.0, "Gaussian sigma (pixels) of the smoothed input for the input-noise probe.",
                       lower_bound=0.1)


def brain_mask(target_hu: np.ndarray, domain: str, window) -> np.ndarray:
    """Brain pixels of (N, H, W) CT targets: 0..80 HU inside the head mask, eroded by one pixel per slice."""
    from cycle_medgan_tf.evaluation.tissue import head_mask

    head = head_mask(target_hu, domain, window)
    soft = head & (target_hu >= BRAIN_HU[0]) & (target_hu <= BRAIN_HU[1])
    return np.stack([ndimage.binary_erosion(s) for s in soft])


def brain_slices(mask: np.ndarray) -> list[int]:
    """Indices of the slices with at least 20 brain pixels (the others are left out of every figure)."""
    return [i for i in range(len(mask)) if mask[i].sum() >= MIN_BRAIN_PIXELS]


def interior_mask(mask: np.ndarray) -> np.ndarray:
    """The brain mask of each slice eroded by ``INTERIOR_PX`` more pixels: brain away from the skull's edge."""
    return np.stack([ndimage.binary_erosion(s, iterations=INTERIOR_PX) for s in mask])


def smooth_inside(image: np.ndarray, mask: np.ndarray, sigma: float = STRUCTURE_SIGMA_PX) -> np.ndarray:
    """``image`` (H, W) smoothed by a Gaussian using only the pixels of ``mask`` (normalised convolution)."""
    weight = ndimage.gaussian_filter(mask.astype(np.float64), sigma)
    values = ndimage.gaussian_filter(np.where(mask, image, 0.0).astype(np.float64), sigma)
    return np.where(weight > 1e-6, values / np.maximum(weight, 1e-6), 0.0)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation; 0 when either side is (numerically) constant."""
    a, b = a - a.mean(), b - b.mean()
    scale = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / scale) if scale > 1e-9 else 0.0


def laplacian(images: np.ndarray) -> np.ndarray:
    """4-neighbour Laplacian of each (H, W) slice (reflected borders)."""
    return np.stack([ndimage.laplace(s.astype(np.float64), mode="reflect") for s in images])


def texture(prediction_hu: np.ndarray, target_hu: np.ndarray, mask: np.ndarray) -> dict:
    """Brain texture figures (means over slices with at least 20 brain pixels)."""
    keep = brain_slices(mask)
    if not keep:
        raise ValueError("no validation slice has 20 or more brain pixels")
    lap_p, lap_t = laplacian(prediction_hu[keep]), laplacian(target_hu[keep])

    def mean_over(fn):
        return float(np.mean([fn(i, k) for i, k in enumerate(keep)]))

    out = dict(
        slices=len(keep),
        brain_std_hu=mean_over(lambda i, k: prediction_hu[k][mask[k]].std()),
        brain_std_hu_target=mean_over(lambda i, k: target_hu[k][mask[k]].std()),
        brain_mae_hu=mean_over(lambda i, k: np.abs(prediction_hu[k] - target_hu[k])[mask[k]].mean()),
        laplacian_std=mean_over(lambda i, k: lap_p[i][mask[k]].std()),
        laplacian_std_target=mean_over(lambda i, k: lap_t[i][mask[k]].std()),
    )
    out["laplacian_ratio"] = out["laplacian_std"] / out["laplacian_std_target"]
    out.update(interior_texture(prediction_hu, target_hu, mask))
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}


def interior_texture(prediction_hu: np.ndarray, target_hu: np.ndarray, mask: np.ndarray) -> dict:
    """The ``interior_*``, ``structure_corr``, ``lattice_share``, ``streak_bias`` and tissue-contrast figures
    (module docstring); means over the slices with at least 20 interior pixels."""
    inner = interior_mask(mask)
    keep = brain_slices(inner)
    if not keep:
        raise ValueError(f"no validation slice has {MIN_BRAIN_PIXELS} or more brain pixels {INTERIOR_PX} pixels "
                         "away from the brain's edge")

    def smoothed_corr(k):
        p, t = (smooth_inside(image[k], inner[k]) for image in (prediction_hu, target_hu))
        return _correlation(p[inner[k]], t[inner[k]])

    return dict(interior_slices=len(keep),
                interior_std_hu=float(np.mean([prediction_hu[k][inner[k]].std() for k in keep])),
                interior_std_hu_target=float(np.mean([target_hu[k][inner[k]].std() for k in keep])),
                interior_mae_hu=float(np.mean([np.abs(prediction_hu[k] - target_hu[k])[inner[k]].mean()
                                               for k in keep])),
                structure_corr=float(np.mean([smoothed_corr(k) for k in keep])),
                lattice_share=float(np.mean([lattice_share(prediction_hu[k], inner[k]) for k in keep])),
                streak_bias=float(np.mean([streak_bias(prediction_hu[k], inner[k]) for k in keep])),
                **tissue_contrasts(prediction_hu[keep], target_hu[keep], inner[keep]))


def tissue_contrasts(prediction_hu: np.ndarray, target_hu: np.ndarray, inner: np.ndarray) -> dict:
    """``ventricle_contrast`` (white matter - CSF) and ``grey_white_contrast`` (grey - white matter) of (N, H, W)
    predictions as shares of the target's (module docstring); NaN when no slice has both classes."""
    low, high = TISSUE_SPLITS_HU
    sums = {"ventricle_contrast": [0.0, 0.0], "grey_white_contrast": [0.0, 0.0]}
    for p, t, m in zip(np.clip(prediction_hu, *BRAIN_HU), target_hu, inner):
        smooth = smooth_inside(t, m)
        csf, wm, gm = m & (smooth < low), m & (smooth >= low) & (smooth < high), m & (smooth >= high)
        for name, dark, bright in (("ventricle_contrast", csf, wm), ("grey_white_contrast", wm, gm)):
            weight = min(dark.sum(), bright.sum())
            if weight >= MIN_CLASS_PIXELS:
                sums[name][0] += weight * (p[bright].mean() - p[dark].mean())
                sums[name][1] += weight * (t[bright].mean() - t[dark].mean())
    return {name: float(pred / target) if target > 0 else float("nan") for name, (pred, target) in sums.items()}


def lattice_share(image: np.ndarray, mask: np.ndarray, sigma: float = LATTICE_SIGMA_PX) -> float:
    """Share of ``image``'s (H, W) fine detail inside ``mask`` that is a period-2 lattice (module docstring)."""
    image = image.astype(np.float64)
    detail = image - ndimage.gaussian_filter(image, 1.0)
    y, x = np.indices(image.shape)
    patterns = (np.where((x + y) % 2, -1.0, 1.0), np.where(x % 2, -1.0, 1.0), np.where(y % 2, -1.0, 1.0))
    lattice = sum(smooth_inside(detail * pattern, mask, sigma) ** 2 for pattern in patterns)
    energy = (detail[mask] ** 2).sum()
    return float(lattice[mask].sum() / energy) if energy > 1e-12 else 0.0


def streak_bias(image: np.ndarray, mask: np.ndarray, sigma: float = STREAK_SIGMA_PX) -> float:
    """Direction of ``image``'s (H, W) detail inside ``mask``: +1 vertical streaks, -1 horizontal, 0 neither
    (module docstring)."""
    image = np.clip(image, *BRAIN_HU).astype(np.float64)
    detail = image - ndimage.gaussian_filter(image, sigma)
    across_columns = np.diff(detail, axis=1)[mask[:, 1:] & mask[:, :-1]]
    across_rows = np.diff(detail, axis=0)[mask[1:, :] & mask[:-1, :]]
    e_x, e_y = (across_columns ** 2).sum(), (across_rows ** 2).sum()
    return float((e_x - e_y) / (e_x + e_y)) if e_x + e_y > 1e-12 else 0.0


def cycle_probe(name: str, run_dir: str, inputs: np.ndarray, head: np.ndarray,
                noise: float) -> tuple[dict, np.ndarray, np.ndarray]:
    """Reconstruction error of the A -> B -> A cycle with and without noise on the translation; G(x) and F(G(x))."""
    from cycle_medgan_tf.evaluation.runs import translate

    fake = translate(name, run_dir, "a2b", inputs, 16)
    rec = translate(name, run_dir, "b2a", fake, 16)
    noisy = np.clip(fake + np.random.default_rng(0).normal(0.0, noise, fake.shape), -1.0, 1.0).astype(np.float32)
    clean_error = np.abs(rec - inputs)[head].mean()
    noisy_error = np.abs(translate(name, run_dir, "b2a", noisy, 16) - inputs)[head].mean()
    return dict(cycle_l1=round(float(clean_error), 5), cycle_l1_noisy=round(float(noisy_error), 5),
                cycle_noise_ratio=round(float(noisy_error / max(clean_error, 1e-12)), 3)), fake, rec


def _brain_corr(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Mean over slices (20+ brain pixels) of the Pearson correlation of ``a`` and ``b`` inside the brain."""
    keep = brain_slices(mask)
    return float(np.mean([np.corrcoef(a[i][mask[i]], b[i][mask[i]])[0, 1] for i in keep]))


def input_noise_probe(name: str, run_dir: str, inputs: np.ndarray, fake: np.ndarray, rec: np.ndarray,
                      mask: np.ndarray, smooth_px: float) -> dict:
    """Does G(x)'s brain texture carry the input's pixel noise? ``fake`` = G(x), ``rec`` = F(G(x)) (see the
    module docstring)."""
    from cycle_medgan_tf.evaluation.runs import translate

    smoothed = np.stack([ndimage.gaussian_filter(s, smooth_px) for s in inputs]).astype(np.float32)
    fake_smooth = translate(name, run_dir, "a2b", smoothed, 16)
    rec_smooth = translate(name, run_dir, "b2a", fake_smooth, 16)
    lap_x, lap_g, lap_gs = laplacian(inputs), laplacian(fake), laplacian(fake_smooth)
    keep = brain_slices(mask)
    out = dict(input_noise_laplacian_std_smoothed=float(np.mean([lap_gs[i][mask[i]].std() for i in keep])),
               input_noise_laplacian_corr=_brain_corr(lap_g, lap_gs, mask),
               input_noise_rec_detail_corr=_brain_corr(laplacian(rec), lap_x, mask),
               input_noise_rec_detail_corr_smoothed=_brain_corr(laplacian(rec_smooth), lap_x, mask))
    return {k: round(v, 4) for k, v in out.items()}


def main(argv):
    del argv
    from cycle_medgan_tf.data.store import StoreError, from_model_range, open_store, to_model_range
    from cycle_medgan_tf.evaluation.lookup import lookup_prediction_in_units
    from cycle_medgan_tf.evaluation.runs import EvaluationError, check_run, required_runs

    try:
        runs = required_runs(FLAGS.data, FLAGS.runs)
        with open_store(FLAGS.data) as store:
            if store.domain_b != "CT":
                fail(f"{FLAGS.data}: domain B is {store.domain_b}, not CT")
            for name, dirs in runs.items():
                for run_dir in dirs:
                    check_run(name, run_dir, "a2b", store)
                    check_run(name, run_dir, "b2a", store)
            n = len(store.val_images("A"))
            keep = np.unique(np.linspace(0, n - 1, min(n, FLAGS.max_slices or n)).round().astype(int))
            inputs = to_model_range(store.val_images("A")[()][keep], store.window_a)
            target = store.val_images("B")[()][keep]
            window_b, domain_b = store.window_b, store.domain_b
            head_a = np.stack([ndimage.binary_dilation(s > -0.95, iterations=2) for s in inputs])
            lookup = lookup_prediction_in_units(target, store.train_images("B")[()], window_b)
    except (StoreError, EvaluationError, OSError) as exc:
        fail(str(exc))
    mask = brain_mask(target, domain_b, window_b)
    print(json.dumps(dict(run="target", **texture(target, target, mask))))
    print(json.dumps(dict(run="lookup", **texture(lookup, target, mask))))
    for name, dirs in runs.items():
        for run_dir in dirs:
            try:
                probe, fake, rec = cycle_probe(name, run_dir, inputs, head_a, FLAGS.noise)
                noise_probe = input_noise_probe(name, run_dir, inputs, fake, rec, mask, FLAGS.smooth_px)
            except EvaluationError as exc:
                fail(str(exc))
            prediction = from_model_range(fake, window_b)
            print(json.dumps(dict(run=name, dir=run_dir, noise=FLAGS.noise, **texture(prediction, target, mask),
                                  **probe, **noise_probe)))


if __name__ == "__main__":
    define_flags()
    run_app(main)
