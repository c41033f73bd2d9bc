"""Markdown tables of one task's stage: means with subject-level intervals, per-seed means and their spread,
differences against CycleGAN, and (ablation) the choice by the rule."""

from __future__ import annotations

from cycle_medgan_tf.evaluation import stats
from cycle_medgan_tf.evaluation.table import COLUMNS, arrow, number
from cycle_medgan_tf.study.gradients import share_table
from cycle_medgan_tf.study.plan import COPY_BASELINE_TASKS, STAGE_STORE, STORE_SEEDS
from cycle_medgan_tf.study.summary import Configuration, difference, reference_of

NOT_SIGNIFICANT = "not significant"
STAGE_TITLES = {"window": "CT window (linear vs soft-tissue transfer), CycleGAN",
                "ablation": "ablation of the cycle feature losses",
                "final": "final comparison"}


def _row(cells) -> str:
    return "| " + " | ".join(cells) + " |"


def _header(first: list[str], columns) -> list[str]:
    titles = [f"{COLUMNS[k].display} {arrow(k)}" for k in columns]
    return [_row(first + titles), _row(["---"] * (len(first) + len(titles)))]


def _interval(ci, key: str, signed: bool = False) -> str:
    return f"[{number(ci[0], key, signed)}, {number(ci[1], key, signed)}]" if ci else ""


def mean_cell(config: Configuration, key: str) -> str:
    if key not in config.values:
        return "–"
    return f"{number(config.mean(key), key)} {_interval(config.interval(key), key)}".strip()


def difference_cell(diff: dict | None, key: str) -> str:
    """``+d [lo, hi]``, followed by "not significant" when the interval contains 0."""
    if diff is None or diff["diff"] is None:
        return "–"
    text = f"{number(diff['diff'], key, signed=True)} {_interval(diff['ci95'], key, signed=True)}".strip()
    return text + (f" {NOT_SIGNIFICANT}" if diff["significant"] is False else "")


def columns_of(configs) -> list[str]:
    keys: list[str] = []
    for config in configs:
        keys += [k for k in config.columns if k not in keys]
    return keys


def means_table(configs, references, columns) -> list[str]:
    lines = _header(["Configuration", "seeds"], columns)
    for c in configs:
        lines.append(_row([c.label, ",".join(map(str, c.seeds))] + [mean_cell(c, k) for k in columns]))
    for r in references:
        label = r.label + ("" if r.data == "linear" else f" ({r.data})")
        lines.append(_row([label, "–"] + [mean_cell(r, k) for k in columns]))
    return lines


def seeds_table(configs, columns) -> list[str]:
    lines = _header(["Configuration", "seed"], columns)
    for c in configs:
        per_seed = {k: c.seed_means(k) for k in columns if k in c.values}
        for i, seed in enumerate(c.seeds):
            lines.append(_row([c.label, str(seed)] + [number(per_seed[k][i], k) if k in per_seed else "–"
                                                      for k in columns]))
        if len(c.seeds) > 1:
            lines.append(_row([c.label, "std"] + [number(c.seed_std(k), k) for k in columns]))
    return lines


def _minus_table(pairs, columns) -> list[str]:
    """One row per (configuration, reference, reference's name): the configuration minus the reference."""
    lines = _header(["Configuration", "minus"], columns)
    for c, ref, name in pairs:
        lines.append(_row([c.label, name] + [difference_cell(difference(c, ref, k), k) for k in columns]))
    return lines


def differences_table(configs, columns) -> list[str]:
    rows = [(c, reference_of(configs, c)) for c in configs]
    rows = [(c, ref, ref.label) for c, ref in rows if ref is not None]
    if not rows:
        return ["Nothing to compare: this budget has no CycleGAN configuration or nothing besides it."]
    return _minus_table(rows, columns)


def identity_table(configs, identity: Configuration, columns) -> list[str]:
    """Each configuration minus Identity (the input copied), subjects paired; Identity is one fixed "seed"."""
    return _minus_table([(c, identity, "Identity") for c in configs], columns)


def choice_section(choice: dict) -> list[str]:
    lines = ["## The choice (rule written before the runs)", "", f"> {choice['rule']}", ""]
    if choice["mean_rank"]:
        metrics = choice["metrics"]
        lines += [_row(["Configuration"] + [COLUMNS[m].display for m in metrics] + ["mean rank"]),
                  _row(["---"] * (len(metrics) + 2))]
        for label, mean_rank in choice["mean_rank"].items():
            lines.append(_row([label] + [f"{choice['ranks'][label][m]:g}" for m in metrics] + [f"{mean_rank:.2f}"]))
        lines.append("")
    weights = ", ".join(f"{k} = {v:g}" for k, v in choice["chosen"].items())
    lines += [f"Verdict: {choice['verdict']}.", "", f"Weights for the final stage: {weights}"
              + ("" if choice["complete"] else " (the final stage uses the config defaults until the ablation is "
                 "complete)") + "."]
    return lines


def stage_markdown(task: str, stage: str, configs, references, choice: dict | None = None) -> str:
    """The markdown file of one task's stage (every budget of it)."""
    store = STAGE_STORE[stage]
    columns = columns_of(configs)
    first = configs[0]
    lines = [f"# {task}: {STAGE_TITLES[stage]}", "",
             f"Evaluated on the paired validation split of the {store} store (default data, generator seed "
             f"{STORE_SEEDS[store]}): {len(first.subjects)} slices of {len(set(first.subjects))} subjects, "
             "direction a2b. Values: mean over seeds of the per-seed slice means, in brackets the 95% interval of "
             f"the subject-level mean (hierarchical percentile bootstrap, {stats.BOOTSTRAP_RESAMPLES} resamples: "
             "subjects resampled, and seeds resampled within each configuration). Differences: subject-level, "
             "subjects paired, seeds resampled independently per configuration; "
             f"\"{NOT_SIGNIFICANT}\" when the interval contains 0. Rendered from the run JSONs alone "
             "(`python -m cycle_medgan_tf.study --render_only --out=DIR`).", ""]
    for steps in sorted({c.steps for c in configs}):
        group = [c for c in configs if c.steps == steps]
        lines += [f"## {steps} steps", ""] + means_table(group, references, columns) + [""]
        lines += ["### Per-seed means and spread across seeds (std, ddof 1)", ""] + seeds_table(group, columns)
        lines += ["", "### Differences against CycleGAN (same budget, linear window)", ""]
        lines += differences_table(group, columns) + [""]
        identity = [r for r in references if r.model == "identity" and r.data == "linear"]
        if task in COPY_BASELINE_TASKS and identity:
            lines += ["### Differences against Identity (the input copied: doing nothing)", "",
                      "A positive difference on a higher-better metric means the model improved the input; a "
                      "configuration significantly below Identity has made the images worse.", ""]
            lines += identity_table(group, identity[0], columns) + [""]
        shares = share_table(group)
        if shares:
            lines += ["### Generator-gradient share of each loss term", "",
                      "A term's norm over the sum of the terms' norms, on one training batch at each logged step; "
                      "mean over seeds [range across seeds]. Figure: "
                      f"`{task}_{stage}_gradients.png`.", ""] + shares
    if choice is not None:
        lines += choice_section(choice) + [""]
    return "\n".join(lines)
