"""Fig. 3: example validation slices, Input | UNIT | CycleGAN | Cycle-MedGAN | Target, with metric values.

Rows are chosen deterministically: for each validation subject (sorted ids, at most ``max_rows`` of them evenly
spread), the slice with the median SSIM of the best trained model present (highest mean SSIM; the first row
of the table when no trained model is present). Display windows per domain:

- CT: a combined bone-and-brain window, piecewise linear in HU: 0 HU black, 80 HU at 55% grey (brain
  tissue, CSF and grey/white matter contrast in the lower half), 1500 HU white (diploe and cortical bone); and,
  in a second row under every example, the brain window 0..80 HU (linear, clipped: ``BRAIN_WINDOW_HU``), where
  soft-tissue errors are visible, with the brain-window SSIM/PSNR under each panel;
- PET: the domain window, inverted grey (high uptake dark), as PET is usually read;
- MR and anything else: the domain window, grey.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from cycle_medgan_tf.atomic import atomic_save_figure
from cycle_medgan_tf.data.store import from_model_range
from cycle_medgan_tf.evaluation.metrics import METRICS
from cycle_medgan_tf.evaluation.table import MODEL_NAMES, arrow
from cycle_medgan_tf.evaluation.tissue import BRAIN_WINDOW_HU, modality as display_kind

CT_DISPLAY_HU = (0.0, 80.0, 1500.0)        # black, knee, white
CT_DISPLAY_GREY = (0.0, 0.55, 1.0)
PANEL_INCHES = 2.0
TEXT_INCHES = 0.42       # room under each image for two lines of metric values
TITLE_INCHES = 0.55      # figure title plus column titles
SHORT_NAMES = {"ssim": "SSIM", "psnr": "PSNR", "lpips": "LPIPS", "vif": "VIF"}


def to_display(images: np.ndarray, domain: str, window: Sequence[float], brain: bool = False) -> np.ndarray:
    """Grey levels in [0, 1] (1 = white) for images in model range [-1, 1] of the given domain; ``brain``
    shows CT in the brain window instead of the combined one."""
    kind = display_kind(domain)
    x = np.asarray(images, dtype=np.float64)
    if kind == "ct":
        hu = from_model_range(x, window).astype(np.float64)
        if brain:
            lo, hi = BRAIN_WINDOW_HU
            return np.clip((hu - lo) / (hi - lo), 0.0, 1.0)
        return np.interp(hu, CT_DISPLAY_HU, CT_DISPLAY_GREY)
    grey = np.clip((x + 1.0) / 2.0, 0.0, 1.0)
    return 1.0 - grey if kind == "pet" else grey


def reference_model(per_slice: Mapping[str, Mapping[str, np.ndarray]]) -> str:
    """The trained model with the highest mean SSIM, else the first row."""
    trained = [name for name in per_slice if name in MODEL_NAMES.values()]
    if not trained:
        return next(iter(per_slice))
    return max(trained, key=lambda name: (np.nanmean(per_slice[name]["ssim"]), name))


def select_examples(per_slice: Mapping[str, Mapping[str, np.ndarray]], subjects: Sequence[str],
                    max_rows: int = 6) -> list[int]:
    """Slice indices of the figure rows: the median-SSIM slice of each chosen subject (lower median on ties)."""
    scores = np.asarray(per_slice[reference_model(per_slice)]["ssim"], dtype=np.float64)
    subjects = np.asarray(subjects).astype(str)
    ids = sorted(set(subjects.tolist()))
    if len(ids) > max_rows:
        ids = [ids[i] for i in sorted(set(np.linspace(0, len(ids) - 1, max_rows).round().astype(int).tolist()))]
    rows = []
    for subject in ids:
        index = np.flatnonzero(subjects == subject)
        order = index[np.lexsort((index, np.nan_to_num(scores[index], nan=-np.inf)))]
        rows.append(int(order[(len(order) - 1) // 2]))
    return rows


def _metric_text(values: Mapping[str, np.ndarray], i: int) -> str:
    parts = []
    for metric in METRICS:
        v = float(values[metric.key][i])
        number = "inf" if np.isinf(v) else ("n/a" if np.isnan(v) else f"{v:.3f}" if metric.key != "psnr"
                                            else f"{v:.2f}")
        parts.append(f"{SHORT_NAMES[metric.key]}{arrow(metric.key)} {number}")
    return f"{parts[0]}  {parts[1]}\n{parts[2]}  {parts[3]}"


def _brain_text(values: Mapping[str, np.ndarray], i: int) -> str:
    if "ssim_brain" not in values:
        return ""
    ssim_b, psnr_b = float(values["ssim_brain"][i]), float(values["psnr_brain"][i])
    return f"brain: SSIM {ssim_b:.3f}  PSNR {psnr_b:.2f}"


def _panel(fig, spec, image, text: str | None, *, title=None, ylabel=None):
    ax = fig.add_subplot(spec)
    ax.imshow(image, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    if ylabel:
        ax.set_ylabel(ylabel, fontsize=8)
    if text:
        ax.text(0.5, -0.03, text, transform=ax.transAxes, ha="center", va="top", fontsize=6.5, family="monospace")


def render_fig3(path, *, inputs: np.ndarray, target: np.ndarray, predictions: Mapping[str, np.ndarray],
                per_slice: Mapping[str, Mapping[str, np.ndarray]], subjects: Sequence[str], source_domain: str,
                target_domain: str, source_window: Sequence[float], target_window: Sequence[float],
                max_rows: int = 6, title: str | None = None, input_metrics: str | None = None) -> list[int]:
    """Draw Fig. 3 into ``path`` (PNG, written atomically) and return the slice indices shown.

    ``predictions`` maps column names (in display order) to (N, H, W) images in [-1, 1]; ``per_slice`` maps row
    names to per-slice metric arrays; the columns' metric values are printed under each image.
    ``input_metrics`` names the ``per_slice`` row whose values go under the Input column (e.g. "Identity").
    When a column is CT, every example gets a second row in the brain window (0..80 HU).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = select_examples(per_slice, subjects, max_rows=max_rows)
    columns = [("Input", inputs, source_domain, source_window, input_metrics)]
    columns += [(name, images, target_domain, target_window, name) for name, images in predictions.items()]
    columns.append(("Target", target, target_domain, target_window, None))

    ct_columns = [c for c, column in enumerate(columns) if display_kind(column[2]) == "ct"]
    brain_rows = bool(ct_columns)
    blocks = 2 if brain_rows else 1
    text_h, title_h = TEXT_INCHES, TITLE_INCHES if title else 0.3
    height = blocks * len(rows) * (PANEL_INCHES + text_h) + title_h
    fig = Figure(figsize=(PANEL_INCHES * len(columns) + 0.3, height))
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(blocks * len(rows), len(columns), left=0.3 / fig.get_figwidth(), right=0.995,
                            top=1 - title_h / height, bottom=text_h / height, wspace=0.04,
                            hspace=text_h / PANEL_INCHES)
    subjects = np.asarray(subjects).astype(str)
    for r, index in enumerate(rows):
        for c, (name, images, domain, window, metric_row) in enumerate(columns):
            values = per_slice.get(metric_row) if metric_row is not None else None
            label = (f"{name} ({domain})" if name in ("Input", "Target") else name.replace(" (", "\n(")) \
                if r == 0 else None
            _panel(fig, grid[blocks * r, c], to_display(images[index], domain, window),
                   _metric_text(values, index) if values else None, title=label,
                   ylabel=f"{subjects[index]} #{index}" if c == 0 else None)
            if brain_rows and display_kind(domain) == "ct":
                _panel(fig, grid[blocks * r + 1, c], to_display(images[index], domain, window, brain=True),
                       _brain_text(values, index) if values else None,
                       ylabel=f"brain {BRAIN_WINDOW_HU[0]:g}..{BRAIN_WINDOW_HU[1]:g} HU" if c == ct_columns[0]
                       else None)
    if title:
        fig.suptitle(title, fontsize=10, y=1 - 0.08 / height)
    atomic_save_figure(fig, path, dpi=110)
    return rows
