"""Learning-curve figure ``curves.png``: metric vs training step from the ``metrics.jsonl`` of several run
directories, one line per model and seed, one panel per metric, with optional horizontal reference lines (e.g. the
Identity score on the same tuning subset, see ``training.curves.identity_scores``).

A curve record is a ``metrics.jsonl`` line with ``"kind": "curve"`` (written by ``training/curves.py``), holding the
step and ``{direction}_{metric}`` means over the tuning subset, e.g. ``a2b_ssim``, ``b2a_psnr``.
"""

from __future__ import annotations

import json
import os
from typing import Mapping, Sequence

from cycle_medgan_tf.atomic import atomic_save_figure
from cycle_medgan_tf.evaluation.table import MODEL_NAMES

CURVE_RECORD_KIND = "curve"
GRADIENT_RECORD_KIND = "gradients"      # per-term gradient norms (training/hooks.py, GradientNorms)
NOT_METRICS = ("kind", "step", "slices", "eval_s")
METRIC_ORDER = ("ssim", "psnr")          # first in each direction; any other metric follows, sorted
METRIC_LABELS = {"ssim": "SSIM", "psnr": "PSNR (dB)"}
SEED_STYLES = ("-", "--", ":", "-.")
PANEL_INCHES = (4.2, 3.0)
MAX_COLUMNS = 4
LEGEND_COLUMNS = 4
LEGEND_ROW_INCHES = 0.22
TITLE_INCHES = 0.3


class CurvesError(ValueError):
    """A problem with the curve figure's inputs; the message is one line meant for the user."""


def metrics_records(path: str) -> list[dict]:
    """Every record (JSON object line) of a ``metrics.jsonl``; a line cut short by a kill is skipped."""
    records = []
    with open(path) as f:
        for line in f:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
    return records


def read_curve_records(run_dir: str) -> list[dict]:
    """The curve records of ``RUN/metrics.jsonl`` in step order (a line cut short by a kill is skipped)."""
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.isfile(path):
        raise CurvesError(f"{run_dir}: no metrics.jsonl (not a training run directory?)")
    records = [r for r in metrics_records(path) if r.get("kind") == CURVE_RECORD_KIND]
    if not records:
        raise CurvesError(f"{run_dir}: metrics.jsonl holds no learning-curve records (train with --curve_data)")
    return sorted(records, key=lambda r: r["step"])


def _run_seed(run_dir: str, fallback: int) -> int:
    try:
        with open(os.path.join(run_dir, "config.json")) as f:
            return int(json.load(f)["seed"])
    except (OSError, ValueError, KeyError, TypeError):
        return fallback


def _metric_sort_key(key: str) -> tuple:
    direction, _, name = key.partition("_")
    rank = METRIC_ORDER.index(name) if name in METRIC_ORDER else len(METRIC_ORDER)
    return (direction != "a2b", direction, rank, name)


def metric_keys(records: Sequence[dict]) -> list[str]:
    """Every metric key the records hold, a2b first, SSIM and PSNR first within a direction."""
    keys = {k for r in records for k in r if k not in NOT_METRICS}
    return sorted(keys, key=_metric_sort_key)


def panel_title(key: str) -> str:
    direction, _, name = key.partition("_")
    return f"{direction}: {METRIC_LABELS.get(name, name)}"


def _collect(runs: Mapping[str, Sequence[str]]) -> list[tuple[str, int, str, list[dict]]]:
    """``(model, index of the run within its model, label, records)`` per run, in the given order."""
    if not runs or not any(runs.values()):
        raise CurvesError("no runs to draw")
    out, labels = [], set()
    for model, run_dirs in runs.items():
        for index, run_dir in enumerate(run_dirs):
            label = f"{MODEL_NAMES.get(model, model)} seed {_run_seed(run_dir, index)}"
            label = label if label not in labels else f"{label} ({run_dir})"
            labels.add(label)
            out.append((model, index, label, read_curve_records(run_dir)))
    return out


def panel_grid(keys: Sequence[str]) -> tuple[int, int, list[int]]:
    """(rows, columns, panel position of each key): each direction starts a new row, at most MAX_COLUMNS wide."""
    directions = list(dict.fromkeys(k.partition("_")[0] for k in keys))
    groups = [[k for k in keys if k.partition("_")[0] == d] for d in directions]
    columns = min(max(len(g) for g in groups), MAX_COLUMNS)
    positions, row = {}, 0
    for group in groups:
        for i, key in enumerate(group):
            positions[key] = (row + i // columns) * columns + i % columns
        row += -(-len(group) // columns)
    return row, columns, [positions[k] for k in keys]


def _draw_panel(ax, key: str, lines, references: Mapping[str, Mapping[str, float]], colours: dict) -> None:
    from matplotlib.ticker import MaxNLocator

    for model, index, label, records in lines:
        points = [(r["step"], r[key]) for r in records if r.get(key) is not None]
        if points:
            steps, values = zip(*points)
            ax.plot(steps, values, SEED_STYLES[index % len(SEED_STYLES)], color=colours[model], marker="o",
                    markersize=3, linewidth=1.2, label=label)
    for j, (name, values) in enumerate(references.items()):
        if values.get(key) is not None:
            ax.axhline(float(values[key]), color="0.45", linestyle=SEED_STYLES[(j + 1) % len(SEED_STYLES)],
                       linewidth=1.0, label=name)
    ax.set_title(panel_title(key), fontsize=10)
    ax.set_xlabel("training step", fontsize=8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)


def render_curves(path, runs: Mapping[str, Sequence[str]], references: Mapping[str, Mapping[str, float]] | None = None,
                  metrics: Sequence[str] | None = None, title: str | None = None, overwrite: bool = False) -> list[str]:
    """Draw ``curves.png`` into ``path`` (PNG, written atomically) and return the metric keys drawn.

    ``runs`` maps a model name to its run directories (one per seed); ``references`` maps a label (e.g.
    "Identity") to ``{metric key: value}`` drawn as horizontal lines; ``metrics`` picks and orders the panels
    (default: every metric of the records)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = os.fspath(path)
    if os.path.exists(path) and not overwrite:
        raise CurvesError(f"{path} already exists (use --overwrite to replace it)")
    lines, references = _collect(runs), dict(references or {})
    available = metric_keys([r for *_, records in lines for r in records])
    keys = list(metrics) if metrics else available
    missing = [k for k in keys if k not in available]
    if missing:
        raise CurvesError(f"no run has curve values for {', '.join(missing)} (available: {', '.join(available)})")
    rows, columns, positions = panel_grid(keys)
    legend_inches = LEGEND_ROW_INCHES * -(-(len(lines) + len(references)) // LEGEND_COLUMNS) + 0.15
    title_inches = TITLE_INCHES if title else 0.0
    height = PANEL_INCHES[1] * rows + legend_inches + title_inches
    fig = Figure(figsize=(PANEL_INCHES[0] * columns, height))
    FigureCanvasAgg(fig)
    colours = {model: f"C{i}" for i, model in enumerate(runs)}
    for key, position in zip(keys, positions):
        _draw_panel(fig.add_subplot(rows, columns, position + 1), key, lines, references, colours)
    handles, labels = _unique_legend(fig.axes)
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), LEGEND_COLUMNS), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, legend_inches / height, 1, 1 - title_inches / height))
    atomic_save_figure(fig, path, dpi=100)
    return keys


def _unique_legend(axes) -> tuple[list, list]:
    handles, labels = [], []
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    return handles, labels

