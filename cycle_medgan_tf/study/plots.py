"""Learning curves of one task's stage from the run JSONs: the curve-subset SSIM (and the first masked metric of
the task) over training steps, one colour per configuration, a thin line per seed and a thick line for the mean
over seeds at the steps every seed has; where given, Identity's score on the same slices (the input copied) as a
dashed line."""

from __future__ import annotations

import numpy as np

from cycle_medgan_tf.atomic import atomic_save_figure
from cycle_medgan_tf.evaluation.curves import panel_title
from cycle_medgan_tf.study.plan import CURVE_SEEDS, STAGE_STORE

CURVE_KEYS = ("a2b_ssim", "a2b_ssim_brain", "a2b_ssim_mask")
PANEL_INCHES = (5.0, 3.4)
IDENTITY_LABEL = "Identity (input copied)"


def _points(records, key: str) -> dict[int, float]:
    return {int(r["step"]): float(r[key]) for r in records if r.get(key) is not None and np.isfinite(r[key])}


def curve_keys(configs) -> list[str]:
    present = {k for c in configs for _, records in c.curves for r in records for k in r}
    return [k for k in CURVE_KEYS if k in present]


def _draw(ax, key: str, configs, identity: dict | None) -> None:
    for i, config in enumerate(configs):
        colour = f"C{i % 10}"
        per_seed = [_points(records, key) for _, records in config.curves]
        for points in per_seed:
            if points:
                ax.plot(sorted(points), [points[s] for s in sorted(points)], color=colour, alpha=0.35,
                        linewidth=0.8)
        common = sorted(set.intersection(*(set(p) for p in per_seed))) if per_seed else []
        if common:
            ax.plot(common, [np.mean([p[s] for p in per_seed]) for s in common], color=colour, linewidth=2.0,
                    marker="o", markersize=3, label=f"{config.label} ({config.steps} steps, {len(per_seed)} seeds)")
    if identity and identity.get(key) is not None:
        ax.axhline(identity[key], color="black", linestyle="--", linewidth=1.0, label=IDENTITY_LABEL)
    ax.set_title(panel_title(key), fontsize=10)
    ax.set_xlabel("training step", fontsize=8)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)


def render_stage_curves(path: str, task: str, stage: str, configs, identity: dict | None = None) -> bool:
    """Write the stage's curve figure to ``path`` (PNG, atomic); False when no run has curve points.
    ``identity``: Identity's curve scores on the stage's curve slices (``{key: value}``), drawn dashed."""
    fig = stage_figure(task, stage, configs, identity)
    if fig is None:
        return False
    atomic_save_figure(fig, path, dpi=100)
    return True


def stage_figure(task: str, stage: str, configs, identity: dict | None = None):
    """The stage's curve figure (a matplotlib Figure), or None when no run has curve points."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    keys = curve_keys(configs)
    if not keys:
        return None
    height = PANEL_INCHES[1] + 0.25 * len(configs) + 0.6
    fig = Figure(figsize=(PANEL_INCHES[0] * len(keys), height))
    FigureCanvasAgg(fig)
    for j, key in enumerate(keys):
        _draw(fig.add_subplot(1, len(keys), j + 1), key, configs, identity)
    handles, labels = fig.axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=7, frameon=False)
    store = STAGE_STORE[stage]
    fig.suptitle(f"{task}, {stage}: learning curves on the curve store (generator seed {CURVE_SEEDS[store]}; "
                 "thin: seeds, thick: mean)", fontsize=10)
    legend = (0.25 * len(configs) / 2 + 0.3) / height
    fig.tight_layout(rect=(0, min(legend, 0.6), 1, 0.93))
    return fig
