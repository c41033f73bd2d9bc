"""Preview PNG of a slice store's paired validation rows in clinical display windows.

Columns per domain: PET in inverted grey from 0 to the slice maximum (as PET is read); CT in a bone window
(W 2000, L 500) and a brain window (W 80, L 40); MR (and any other domain) in grey from 0 to a robust
maximum, shared by an MR pair, whose last column shows the corrupted minus motion-free difference.
"""

from __future__ import annotations

import numpy as np

from cycle_medgan_tf.atomic import atomic_save_figure
from cycle_medgan_tf.data.store import open_store

CT_BONE = (-500.0, 1500.0)
CT_BRAIN = (0.0, 80.0)


def _panels(domain: str, image: np.ndarray, top: float) -> list[tuple[str, np.ndarray, str, tuple]]:
    """(title, image, colormap, (vmin, vmax)) for one domain image."""
    if domain == "CT":
        return [("CT bone W2000 L500", image, "gray", CT_BONE), ("CT brain W80 L40", image, "gray", CT_BRAIN)]
    if domain == "PET":
        return [("PET", image, "gray_r", (0.0, top))]
    return [(domain, image, "gray", (0.0, top))]


def _display_max(domain: str, image: np.ndarray) -> float:
    """Top of the grey scale: the slice maximum for PET (as PET is read), else the 99.9th percentile."""
    top = float(image.max()) if domain == "PET" else float(np.percentile(image, 99.9))
    return max(top, 1e-6)


def save_preview(store_path, png_path, n_rows: int = 4) -> str:
    """Write a PNG with ``n_rows`` evenly spaced validation pairs of the store at ``store_path``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open_store(store_path) as store:
        val_a, val_b = store.val_images("A"), store.val_images("B")
        rows = np.unique(np.linspace(0, len(val_a) - 1, n_rows).round().astype(int))
        subjects = store.val_subjects()
        pairs = [(int(r), np.asarray(val_a[r]), np.asarray(val_b[r])) for r in rows]
        domains = (store.domain_a, store.domain_b)
        same = store.domain_a == store.domain_b
        correction = store.file.attrs.get("pet_attenuation_correction")
        source = f"{store.domain_a} ({str(correction).upper()})" if correction else store.domain_a
        title = f"{store.task}: validation {source} -> {store.domain_b}, {store.image_size} px"
    figure_rows = []
    for r, a, b in pairs:
        max_b = _display_max(domains[1], b)
        mr_pair = domains[0].startswith("MR") and domains[1].startswith("MR")
        panels = _panels(domains[0], a, max_b if mr_pair else _display_max(domains[0], a))
        if not same:
            panels += _panels(domains[1], b, _display_max(domains[1], b))
        if mr_pair:
            panels.append(("A - B", a - b, "RdBu_r", (-0.25 * max_b, 0.25 * max_b)))
        figure_rows.append((f"{subjects[r]} row {r}", panels))
    n_cols = len(figure_rows[0][1])
    fig, axes = plt.subplots(len(figure_rows), n_cols, figsize=(2.6 * n_cols, 2.7 * len(figure_rows)),
                             squeeze=False)
    for i, (label, panels) in enumerate(figure_rows):
        for j, (name, image, cmap, (vmin, vmax)) in enumerate(panels):
            ax = axes[i, j]
            ax.imshow(image, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(name if i == 0 else "", fontsize=8)
        axes[i, 0].set_ylabel(label, fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    atomic_save_figure(fig, png_path, dpi=100)
    plt.close(fig)
    return str(png_path)
