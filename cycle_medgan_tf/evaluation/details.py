"""details.md: what sits behind the headline Table I (per-subject means, subject- and slice-level tests)."""

from __future__ import annotations

from typing import Mapping

from cycle_medgan_tf.evaluation.table import column_titles, number, result_columns


def _p(value) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def _per_subject_table(result: Mapping) -> list[str]:
    keys = result_columns(result)
    lines = ["| Model | Subject | Slices | " + " | ".join(column_titles(keys)) + " |",
             "|" + "|".join(["---"] * (3 + len(keys))) + "|"]
    for name, subjects in result.get("per_subject", {}).items():
        for subject, values in subjects.items():
            cells = [number(values.get(key), key) for key in keys]
            lines.append(f"| {name} | {subject} | {values.get('n_slices')} | " + " | ".join(cells) + " |")
    return lines


def _subject_tests(result: Mapping) -> list[str]:
    lines = ["| Metric | a | b | mean diff (subjects) | Wilcoxon p (subjects) | note |", "|---|---|---|---|---|---|"]
    for c in result.get("comparisons", []):
        lines.append(f"| {c['metric']} | {c['a']} | {c['b']} | {number(c.get('diff'), c['metric'], True)} | "
                     f"{_p(c.get('subject_p_value'))} | {c.get('subject_test_reason') or ''} |")
    return lines


def _slice_tests(result: Mapping) -> list[str]:
    lines = ["| Seed | Metric | a | b | mean diff (slices) | Wilcoxon p (slices) | n |",
             "|---|---|---|---|---|---|---|"]
    for label, tests in result.get("slice_tests", {}).items():
        for t in tests:
            lines.append(f"| {label} | {t['metric']} | {t['a']} | {t['b']} | "
                         f"{number(t.get('mean_diff'), t['metric'], True)} | {_p(t.get('p_value'))} | {t['n']} |")
    return lines


def render_details(result: Mapping) -> str:
    """Markdown with the per-subject means (averaged over seeds) and the subject- and slice-level tests."""
    parts = [f"# Details: {result['task']} ({result['n_slices']} validation slices)", "",
             "## Per-subject means (averaged over training seeds)", "", *_per_subject_table(result), ""]
    if result.get("comparisons"):
        parts += ["## Subject-level paired tests (two-sided Wilcoxon signed-rank on seed-averaged subject means)",
                  "", *_subject_tests(result), ""]
    if any(result.get("slice_tests", {}).values()):
        parts += ["## Slice-level paired tests per seed (two-sided Wilcoxon signed-rank; slices of one subject are "
                  "not independent, so these p-values overstate the evidence)", "", *_slice_tests(result), ""]
    return "\n".join(parts)
