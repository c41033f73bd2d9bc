"""How much each loss term steers the generators, from the final stage's run JSONs (``gradients``: the norm of
the generators' gradient of each weighted term, logged 8 times per run by ``training/hooks.GradientNorms``).

A term's share is its norm over the sum of the terms' norms at that step (the total gradient's norm is at most that
sum; the shares say which term dominates, not how the total decomposes). Tables and figures show the mean over
seeds at the steps every seed logged, with the range across seeds."""

from __future__ import annotations

import numpy as np

from cycle_medgan_tf.atomic import atomic_save_figure

SHARE = "grad_share_"
NORM = "grad_norm_"
TERM_ORDER = ("adversarial", "cycle", "identity", "cycle_perceptual", "cycle_style")
PANEL_INCHES = (4.6, 3.2)


def terms_of(config) -> list[str]:
    """The loss terms with a share in any of ``config``'s gradient records, in the order of the loss."""
    present = {k[len(SHARE):] for _, records in config.gradients for r in records for k in r if k.startswith(SHARE)}
    return [t for t in TERM_ORDER if t in present] + sorted(present - set(TERM_ORDER))


def _seeds_text(n: int) -> str:
    return f"{n} seed" + ("" if n == 1 else "s")


def with_gradients(configs) -> list:
    return [c for c in configs if any(records for _, records in c.gradients)]


def _series(config, key: str) -> tuple[list[int], np.ndarray]:
    """The steps every seed logged and the (seeds, steps) values of ``key`` there (NaN where missing)."""
    per_seed = [{int(r["step"]): r.get(key) for r in records} for _, records in config.gradients if records]
    steps = sorted(set.intersection(*(set(p) for p in per_seed))) if per_seed else []
    values = np.array([[np.nan if p[s] is None else float(p[s]) for s in steps] for p in per_seed], dtype=float)
    return steps, values.reshape(len(per_seed), len(steps))


def share_summary(config) -> dict:
    """``{"steps": [...], "seeds": n, term: {"mean": [...], "low": [...], "high": [...], "norm_median": x}}``:
    per term, the mean share over seeds at each common step, its range across seeds, and the median norm."""
    out = {"steps": [], "seeds": sum(bool(records) for _, records in config.gradients)}
    for term in terms_of(config):
        steps, shares = _series(config, SHARE + term)
        _, norms = _series(config, NORM + term)
        out["steps"] = steps
        out[term] = {"mean": np.nanmean(shares, axis=0).tolist(), "low": np.nanmin(shares, axis=0).tolist(),
                     "high": np.nanmax(shares, axis=0).tolist(),
                     "norm_median": float(np.nanmedian(norms)) if norms.size else float("nan")}
    return out


def share_table(configs) -> list[str]:
    """Markdown: one row per configuration and term; a column per logged step (mean share over seeds, in brackets
    the range across seeds) and the median norm over steps and seeds."""
    lines = []
    for config in with_gradients(configs):
        summary = share_summary(config)
        steps = summary["steps"]
        lines += [f"{config.label}, {config.steps} steps ({_seeds_text(summary['seeds'])}):", "",
                  "| term | " + " | ".join(f"step {s}" for s in steps) + " | median norm |",
                  "| --- | " + " | ".join("---" for _ in steps) + " | --- |"]
        for term in terms_of(config):
            row = summary[term]
            cells = [f"{m:.2f} [{lo:.2f}, {hi:.2f}]" if summary["seeds"] > 1 else f"{m:.2f}"
                     for m, lo, hi in zip(row["mean"], row["low"], row["high"])]
            lines.append(f"| {term} | " + " | ".join(cells) + f" | {row['norm_median']:.3g} |")
        lines.append("")
    return lines


def render_gradient_shares(path: str, task: str, stage: str, configs) -> bool:
    """Write the share of each term over training, one panel per configuration with gradient records (PNG,
    atomic); False when there are none."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    measured = with_gradients(configs)
    if not measured:
        return False
    fig = Figure(figsize=(PANEL_INCHES[0] * len(measured), PANEL_INCHES[1] + 0.8))
    FigureCanvasAgg(fig)
    for j, config in enumerate(measured):
        ax = fig.add_subplot(1, len(measured), j + 1)
        summary = share_summary(config)
        for i, term in enumerate(terms_of(config)):
            row, colour = summary[term], f"C{TERM_ORDER.index(term) if term in TERM_ORDER else i}"
            ax.fill_between(summary["steps"], row["low"], row["high"], color=colour, alpha=0.2, linewidth=0)
            ax.plot(summary["steps"], row["mean"], color=colour, marker="o", markersize=3, label=term)
        ax.set_ylim(0, 1)
        ax.set_title(f"{config.label}, {config.steps} steps ({_seeds_text(summary['seeds'])})", fontsize=9)
        ax.set_xlabel("training step", fontsize=8)
        ax.set_ylabel("share of the summed gradient norms", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, frameon=False)
    fig.suptitle(f"{task}, {stage}: generator-gradient share of each loss term (line: mean over seeds; band: "
                 "range)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    atomic_save_figure(fig, path, dpi=100)
    return True
