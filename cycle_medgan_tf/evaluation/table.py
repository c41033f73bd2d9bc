"""Rendering of Table I results (the ``table1.json`` dictionary) as Markdown, CSV and LaTeX.

A *result* is the dictionary written to ``table1.json``: ``{"task", "split", "n_slices", "metric_conventions",
"models": {NAME: {metric: {"mean", "std", "ci95", "n"}}}, "per_subject", "tests"}``. Every renderer takes a
list of results, so one call renders a single task or several tasks side by side (both halves of Table I).
"""

from __future__ import annotations

import csv
import io
import math
from typing import Mapping, Sequence

from cycle_medgan_tf.evaluation.metrics import METRICS

MODEL_NAMES = {"unit": "UNIT", "cyclegan": "CycleGAN", "cycle_medgan": "Cycle-MedGAN"}
DECIMALS = {"ssim": 4, "psnr": 2, "lpips": 4, "vif": 4}

# The paper's Table I (private data; for side-by-side display only). Columns as in the paper's text.
PAPER_TABLE_I = {
    "PET->CT": {
        "UNIT": {"ssim": 0.8485, "psnr": 20.14, "lpips": 0.6762, "vif": 0.2057},
        "CycleGAN": {"ssim": 0.8963, "psnr": 23.35, "lpips": 0.2561, "vif": 0.3831},
        "Cycle-MedGAN": {"ssim": 0.9115, "psnr": 24.08, "lpips": 0.2233, "vif": 0.4275},
    },
    "MR motion": {
        "UNIT": {"ssim": 0.6914, "psnr": 18.64, "lpips": 0.6953, "vif": 0.1239},
        "CycleGAN": {"ssim": 0.8011, "psnr": 22.39, "lpips": 0.3282, "vif": 0.3432},
        "Cycle-MedGAN": {"ssim": 0.8118, "psnr": 22.96, "lpips": 0.3029, "vif": 0.3513},
    },
}


def paper_reference(task_labels: Mapping[str, str]) -> dict:
    """``render_markdown`` reference from the paper: ``{"pet_ct": "PET->CT", ...}`` maps our task names to the
    paper's Table I halves ("PET->CT", "MR motion")."""
    return {task: PAPER_TABLE_I[label] for task, label in task_labels.items()}


def arrow(metric_key: str, latex: bool = False) -> str:
    """Arrow telling which direction is better for a metric."""
    higher = next(m.higher_is_better for m in METRICS if m.key == metric_key)
    if latex:
        return r"$\uparrow$" if higher else r"$\downarrow$"
    return "↑" if higher else "↓"


def column_titles(latex: bool = False) -> list[str]:
    """Metric column titles with their better-direction arrows, in Table I order."""
    titles = []
    for metric in METRICS:
        name = metric.display.replace("(dB)", "[dB]") if latex else metric.display
        titles.append(f"{name} {arrow(metric.key, latex)}")
    return titles


def _number(value, key: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a" if value is None else ("inf" if value > 0 else "-inf")
    return f"{value:.{DECIMALS[key]}f}"


def cell(summary: Mapping, key: str, latex: bool = False) -> str:
    """``mean ± std`` of one metric summary (``n/a`` when undefined)."""
    mean = _number(summary.get("mean"), key)
    if summary.get("std") is None:
        return mean
    pm = r" $\pm$ " if latex else " ± "
    return f"{mean}{pm}{_number(summary['std'], key)}"


def best_models(result: Mapping) -> dict[str, str]:
    """For each metric, the trained model (UNIT/CycleGAN/Cycle-MedGAN) with the best mean, if any."""
    best = {}
    for metric in METRICS:
        candidates = [(s[metric.key]["mean"], name) for name, s in result["models"].items()
                      if name in MODEL_NAMES.values() and s[metric.key]["mean"] is not None]
        if candidates:
            pick = max if metric.higher_is_better else min
            best[metric.key] = pick(candidates)[1]
    return best


def render_markdown(results: Sequence[Mapping], reference: Mapping | None = None) -> str:
    """Markdown table of one or several tasks; ``reference`` ({task: {model: {metric: value}}}, e.g.
    ``PAPER_TABLE_I`` re-keyed by task) adds a "paper" value beside each measured one when present."""
    header = ["Task", "Model"] + column_titles()
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    for result in results:
        best = best_models(result)
        ref_task = (reference or {}).get(result["task"], {})
        for name, summaries in result["models"].items():
            cells = [result["task"], name]
            for metric in METRICS:
                text = cell(summaries[metric.key], metric.key)
                if best.get(metric.key) == name:
                    text = f"**{text}**"
                paper = ref_task.get(name, {}).get(metric.key)
                if paper is not None:
                    text += f" (paper {_number(paper, metric.key)})"
                cells.append(text)
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def render_csv(results: Sequence[Mapping]) -> str:
    """CSV with one row per task and model: mean, std and CI bounds of every metric, and n_slices."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = ["task", "split", "model", "n_slices"]
    for metric in METRICS:
        header += [f"{metric.key}_mean", f"{metric.key}_std", f"{metric.key}_ci95_lo", f"{metric.key}_ci95_hi"]
    writer.writerow(header)
    for result in results:
        for name, summaries in result["models"].items():
            row = [result["task"], result["split"], name, result["n_slices"]]
            for metric in METRICS:
                s = summaries[metric.key]
                ci = s.get("ci95") or [None, None]
                row += [_csv_value(s.get("mean")), _csv_value(s.get("std")), _csv_value(ci[0]), _csv_value(ci[1])]
            writer.writerow(row)
    return buffer.getvalue()


def _csv_value(value) -> str:
    return "" if value is None else repr(float(value))


def _latex_escape(text: str) -> str:
    for char, repl in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"),
                       ("$", r"\$"), ("{", r"\{"), ("}", r"\}")):
        text = text.replace(char, repl)
    return text.replace("->", r"$\rightarrow$")


def render_latex(results: Sequence[Mapping]) -> str:
    """A booktabs ``tabular`` (mean $\\pm$ std, best trained model in bold), one block per task."""
    titles = column_titles(latex=True)
    lines = [r"\begin{tabular}{ll" + "c" * len(titles) + "}", r"\toprule",
             "Task & Model & " + " & ".join(titles) + r" \\", r"\midrule"]
    for index, result in enumerate(results):
        if index:
            lines.append(r"\midrule")
        best = best_models(result)
        for name, summaries in result["models"].items():
            cells = []
            for metric in METRICS:
                text = cell(summaries[metric.key], metric.key, latex=True)
                cells.append(rf"\textbf{{{text}}}" if best.get(metric.key) == name else text)
            lines.append(f"{_latex_escape(result['task'])} & {_latex_escape(name)} & " + " & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"
