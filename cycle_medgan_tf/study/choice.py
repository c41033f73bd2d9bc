"""The ablation's choice of Cycle-MedGAN's loss weights, by the rule written before the runs
(:data:`plan.CHOICE_RULE`), from the ablation's records on the tuning store alone."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from cycle_medgan_tf.study.plan import (CHOICE_RULE, CHOICE_RULE_MR, PROTOCOL_WEIGHTS, RULE_METRICS, STUDY_SEEDS,
                                        Run, ablation_configs, default_weights)
from cycle_medgan_tf.study.summary import Configuration


def planned_labels(task: str) -> list[str]:
    """The labels of the ablation's configurations."""
    return [Run(task, "ablation", "tuning", "linear", model, 0, 1, "quick", settings).label
            for model, settings in ablation_configs()]


def _missing(task: str, configs: list[Configuration], seeds) -> list[str]:
    """The planned runs without a record, one entry per run. Without the plan's ``seeds`` (rendering from the
    JSONs alone) every configuration is expected to have the protocol's seeds (:data:`plan.STUDY_SEEDS`) and each
    seed that any configuration has."""
    by_label = {c.label: c for c in configs}
    expected = set(seeds) if seeds is not None else set(STUDY_SEEDS) | {s for c in configs for s in c.seeds}
    out = []
    for label in planned_labels(task):
        have = set(by_label[label].seeds) if label in by_label else set()
        if not have and not expected:
            out.append(f"{label} (every seed)")
        out += [f"{label} seed {s}" for s in sorted(expected - have)]
    return out


def mean_ranks(configs: list[Configuration], metrics) -> tuple[dict, dict]:
    """Per configuration: rank on each metric (1 = best seeds-averaged mean; ties share the average rank) and
    the mean rank over the metrics."""
    ranks = {c.label: {} for c in configs}
    for metric in metrics:
        means = np.array([c.mean(metric) if c.mean(metric) is not None else -np.inf for c in configs])
        for c, rank in zip(configs, rankdata(-means, method="average")):
            ranks[c.label][metric] = float(rank)
    return ranks, {label: float(np.mean(list(r.values()))) for label, r in ranks.items()}


def choose(task: str, configs: list[Configuration], seeds=None, steps: int | None = None) -> dict:
    """The rule applied to the ablation configurations of ``task`` (at budget ``steps``; default: the budget
    with the most configurations). ``seeds``: the seeds the plan expects (completeness is checked against them).
    Returns the ``choice.json`` entry: rule, ranks, chosen weights, whether the losses helped, and a verdict."""
    ablation = [c for c in configs if c.task == task and c.stage == "ablation" and c.data == "linear"]
    budgets = sorted({c.steps for c in ablation}, key=lambda s: (sum(c.steps == s for c in ablation), s))
    steps = steps if steps is not None else (budgets[-1] if budgets else None)
    ablation = [c for c in ablation if c.steps == steps]
    metrics = RULE_METRICS[task]
    out = {"task": task, "rule": CHOICE_RULE + (" " + CHOICE_RULE_MR if task == "mr_motion" else ""),
           "metrics": list(metrics), "store": "tuning", "steps": steps, "defaults": default_weights(),
           "missing": _missing(task, ablation, seeds)}
    out["complete"] = not out["missing"] and bool(ablation)
    baseline = [c for c in ablation if c.model == "cyclegan"]
    candidates = [c for c in ablation if c.model == "cycle_medgan"]
    if not baseline or not candidates:
        return dict(out, chosen=default_weights(), helped=None, chosen_label=None, ranks={}, mean_rank={},
                    verdict="the ablation has no records of CycleGAN and of the cycle feature losses yet: the "
                    "current defaults stand")
    ranks, mean_rank = mean_ranks(ablation, metrics)
    best = min(candidates, key=lambda c: (mean_rank[c.label], -(c.mean(metrics[0]) or -np.inf)))
    helped = mean_rank[best.label] < mean_rank[baseline[0].label]
    # "kept" means the defaults the protocol was written against (pinned), so that adopting another task's
    # choice as the family defaults later cannot change this task's recorded choice
    chosen = ({k: best.settings.get(k, 0.0) for k in PROTOCOL_WEIGHTS} if helped else dict(PROTOCOL_WEIGHTS))
    seeds_text = f"{min(len(c.seeds) for c in ablation)}-{max(len(c.seeds) for c in ablation)} seeds"
    verdict = (f"{best.label} has the best mean rank ({mean_rank[best.label]:.2f} against CycleGAN's "
               f"{mean_rank[baseline[0].label]:.2f}; {seeds_text}, {steps} steps)" if helped else
               f"no configuration with the cycle feature losses beats CycleGAN's mean rank "
               f"({mean_rank[baseline[0].label]:.2f}; best {best.label}: {mean_rank[best.label]:.2f}): the losses did "
               "not help on the tuning store, the current defaults are kept")
    if not out["complete"]:
        verdict += f"; the ablation is incomplete ({len(out['missing'])} runs missing), so this is provisional"
    return dict(out, chosen=chosen, helped=helped, chosen_label=best.label if helped else None, ranks=ranks,
                mean_rank=mean_rank, verdict=verdict)


def final_weights(choice: dict) -> tuple[dict, str]:
    """The weights the final stage trains Cycle-MedGAN with, and where they come from (the ablation's choice
    when the ablation is complete, else the current defaults)."""
    if choice.get("complete"):
        return dict(choice["chosen"]), f"ablation choice ({choice['verdict']})"
    missing = len(choice.get("missing") or [])
    return default_weights(), (f"config defaults: the ablation is incomplete ({missing} runs missing)" if missing
                               else "config defaults: no ablation records")
