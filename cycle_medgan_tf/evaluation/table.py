"""Rendering of Table I results (the ``table1.json`` dictionary) as Markdown, CSV and LaTeX.

A *result* is the dictionary written to ``table1.json``: ``{"task", "split", "n_slices", "metric_conventions",
"models": {NAME: {metric: {"mean", "std", "ci95", "n"}}}, "per_subject", "tests"}`` plus ``"columns"`` (the metric
keys in display order: the paper's four, then the tissue-aware ones; the paper's four when absent). Every renderer
takes a list of results, so one call renders a single task or several tasks side by side (both halves of Table I);
a task without some column shows "–" there.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from typing import Mapping, Sequence

from cycle_medgan_tf import catalogue
from cycle_medgan_tf.evaluation.metrics import METRICS
from cycle_medgan_tf.evaluation.tissue import TISSUE_METRIC_BY_KEY

MODEL_NAMES = catalogue.display_names()     # {model: display name} of the translators, in Table I order
PAPER_DECIMALS = {"ssim": 4, "psnr": 2, "lpips": 4, "vif": 4}
MISSING = "–"


@dataclass(frozen=True)
class Column:
    """A table column: metric key, display name, which way is better ("higher", "lower", "zero"), decimals."""

    key: str
    display: str
    better: str
    decimals: int


PAPER_COLUMNS = tuple(Column(m.key, m.display, "higher" if m.higher_is_better else "lower",
                             PAPER_DECIMALS[m.key])
                      for m in METRICS)
COLUMNS = {c.key: c for c in PAPER_COLUMNS + tuple(Column(t.key, t.display, t.better, t.decimals)
                                                   for t in TISSUE_METRIC_BY_KEY.values())}

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
    """Arrow telling which direction is better for a metric (``→0`` for a signed error)."""
    better = COLUMNS[metric_key].better
    if latex:
        return {"higher": r"$\uparrow$", "lower": r"$\downarrow$"}.get(better, r"$\to 0$")
    return {"higher": "↑", "lower": "↓"}.get(better, "→0")


def result_columns(result: Mapping) -> list[str]:
    """The metric keys of one result in display order."""
    return list(result.get("columns") or [m.key for m in METRICS])


def table_columns(results: Sequence[Mapping]) -> list[str]:
    """The union of the results' columns: the paper's four first, then the others in order of appearance."""
    keys: list[str] = []
    for result in results:
        keys += [key for key in result_columns(result) if key not in keys]
    paper = [m.key for m in METRICS]
    return [k for k in paper if k in keys] + [k for k in keys if k not in paper]


def column_titles(keys: Sequence[str] | None = None, latex: bool = False) -> list[str]:
    """Metric column titles with their better-direction arrows (default: the paper's four)."""
    titles = []
    for key in keys or [m.key for m in METRICS]:
        name = COLUMNS[key].display.replace("(dB)", "[dB]").replace("(HU)", "[HU]") if latex else COLUMNS[key].display
        titles.append(f"{name} {arrow(key, latex)}")
    return titles


def number(value, key: str, signed: bool = False) -> str:
    """One value of metric ``key`` with that metric's decimals (``n/a`` for None, ``inf`` for infinity)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a" if value is None else ("inf" if value > 0 else "-inf")
    return f"{value:{'+' if signed else ''}.{COLUMNS[key].decimals}f}"


def cell(summary: Mapping | None, key: str, latex: bool = False) -> str:
    """``mean ± spread`` of one metric summary (``n/a`` when undefined, "–" when the row lacks the metric)."""
    if summary is None:
        return "--" if latex else MISSING
    mean = number(summary.get("mean"), key)
    if summary.get("std") is None:
        return mean
    pm = r" $\pm$ " if latex else " ± "
    return f"{mean}{pm}{number(summary['std'], key)}"


def best_models(result: Mapping) -> dict[str, str]:
    """For each metric, the trained model (UNIT/CycleGAN/Cycle-MedGAN) with the best mean, if any."""
    best = {}
    for key in result_columns(result):
        candidates = [(s[key]["mean"], name) for name, s in result["models"].items()
                      if name in MODEL_NAMES.values() and key in s and s[key]["mean"] is not None]
        if not candidates:
            continue
        better = COLUMNS[key].better
        if better == "zero":
            best[key] = min((abs(v), name) for v, name in candidates)[1]
        else:
            best[key] = (max if better == "higher" else min)(candidates)[1]
    return best


def _row_cells(result: Mapping, name: str, keys: Sequence[str], latex: bool, ref_task: Mapping) -> list[str]:
    best, summaries, cells = best_models(result), result["models"][name], []
    for key in keys:
        text = cell(summaries.get(key), key, latex=latex)
        if best.get(key) == name:
            text = rf"\textbf{{{text}}}" if latex else f"**{text}**"
        paper = ref_task.get(name, {}).get(key)
        if paper is not None:
            text += f" (paper {number(paper, key)})"
        cells.append(text)
    return cells


def render_markdown(results: Sequence[Mapping], reference: Mapping | None = None) -> str:
    """Markdown table of one or several tasks; ``reference`` ({task: {model: {metric: value}}}, e.g.
    ``PAPER_TABLE_I`` re-keyed by task) adds a "paper" value beside each measured one when present."""
    keys = table_columns(results)
    header = ["Task", "Model"] + column_titles(keys)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    for result in results:
        ref_task = (reference or {}).get(result["task"], {})
        for name in result["models"]:
            cells = [result["task"], name] + _row_cells(result, name, keys, False, ref_task)
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def render_csv(results: Sequence[Mapping]) -> str:
    """CSV with one row per task and model: mean, spread (std) and CI bounds of every metric, and n_slices."""
    keys = table_columns(results)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = ["task", "split", "model", "n_slices"]
    for key in keys:
        header += [f"{key}_mean", f"{key}_std", f"{key}_ci95_lo", f"{key}_ci95_hi"]
    writer.writerow(header)
    for result in results:
        for name, summaries in result["models"].items():
            row = [result["task"], result["split"], name, result["n_slices"]]
            for key in keys:
                s = summaries.get(key) or {}
                ci = s.get("ci95") or [None, None]
                row += [_csv_value(s.get("mean")), _csv_value(s.get("std")), _csv_value(ci[0]), _csv_value(ci[1])]
            writer.writerow(row)
    return buffer.getvalue()


def _csv_value(value) -> str:
    return "" if value is None else repr(float(value))


def latex_escape(text: str) -> str:
    """Text made safe for LaTeX (``->`` becomes an arrow)."""
    for char, repl in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"),
                       ("$", r"\$"), ("{", r"\{"), ("}", r"\}")):
        text = text.replace(char, repl)
    return text.replace("->", r"$\rightarrow$")


def render_latex(results: Sequence[Mapping]) -> str:
    """A booktabs ``tabular`` (mean $\\pm$ spread, best trained model in bold), one block per task."""
    keys = table_columns(results)
    lines = [r"\begin{tabular}{ll" + "c" * len(keys) + "}", r"\toprule",
             "Task & Model & " + " & ".join(column_titles(keys, latex=True)) + r" \\", r"\midrule"]
    for index, result in enumerate(results):
        if index:
            lines.append(r"\midrule")
        for name in result["models"]:
            cells = _row_cells(result, name, keys, True, {})
            lines.append(f"{latex_escape(result['task'])} & {latex_escape(name)} & " + " & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def render_notes(result: Mapping) -> str:
    """The headline table's notes (``result["notes"]``: what the values and spreads are), one line each."""
    return "".join(f"{line}\n" for line in result.get("notes", []))


def verdict(comparison: Mapping) -> str:
    """"not significant" when the interval contains 0, else which model the significant difference favours."""
    if comparison.get("significant") is None:
        return "n/a"
    if not comparison["significant"]:
        return "not significant"
    better = COLUMNS[comparison["metric"]].better
    if better == "zero":
        return "significant"
    a_better = (comparison["diff"] > 0) == (better == "higher")
    return f"significant, {comparison['a'] if a_better else comparison['b']} better"


def comparison_cell(comparison: Mapping) -> str:
    """``diff [lo, hi] verdict`` of one subject-level comparison."""
    key = comparison["metric"]
    ci = comparison.get("ci95")
    interval = f" [{number(ci[0], key, True)}, {number(ci[1], key, True)}]" if ci else ""
    return f"{number(comparison.get('diff'), key, True)}{interval} {verdict(comparison)}"


def render_comparisons(result: Mapping) -> str:
    """Markdown table: per metric, the reference model minus every other row, with 95% intervals."""
    comparisons = result.get("comparisons") or []
    if not comparisons:
        return ""
    reference = comparisons[0]["a"]
    others = list(dict.fromkeys(c["b"] for c in comparisons))
    by_pair = {(c["metric"], c["b"]): c for c in comparisons}
    lines = [f"{reference} minus each other row, subject level (95% hierarchical bootstrap interval):", "",
             "| Metric | " + " | ".join(f"− {name}" for name in others) + " |",
             "|" + "|".join(["---"] * (len(others) + 1)) + "|"]
    for key, title in zip(result_columns(result), column_titles(result_columns(result))):
        cells = [comparison_cell(by_pair[(key, name)]) if (key, name) in by_pair else MISSING for name in others]
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
