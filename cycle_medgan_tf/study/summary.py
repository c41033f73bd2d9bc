"""The study's records grouped into configurations (one per stage, label and step budget, over its seeds) and
their statistics: mean over seeds of the per-seed slice means, the subject-level 95% interval of the hierarchical
bootstrap over subjects x seeds (``evaluation/stats.py``, as the main job's headline table), the spread across
seeds, and differences against a reference configuration. Needs numpy and scipy only (no TensorFlow)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cycle_medgan_tf import catalogue
from cycle_medgan_tf.evaluation import stats
from cycle_medgan_tf.study.plan import DATA_VARIANTS, STAGES, Run
from cycle_medgan_tf.study.records import decode_values, run_of

MODEL_ORDER = catalogue.translator_names()


@dataclass
class Configuration:
    """Every seed of one configuration: per-seed per-slice values and learning curves."""

    task: str
    stage: str
    label: str
    model: str
    data: str
    steps: int
    settings: dict
    subjects: list
    columns: list
    seeds: list = field(default_factory=list)
    values: dict = field(default_factory=dict)      # metric -> [per-slice array per seed]
    curves: list = field(default_factory=list)      # [(seed, [curve records])]
    gradients: list = field(default_factory=list)   # [(seed, [gradient-norm records])] (final stage)
    step_s: list = field(default_factory=list)      # median seconds per step of each seed
    store: str = ""                                 # "tuning" or "test"

    def seed_means(self, metric: str) -> list[float]:
        out = []
        for values in self.values.get(metric, []):
            used = stats.finite(values)
            out.append(float(np.mean(used)) if len(used) else float("nan"))
        return out

    def mean(self, metric: str) -> float | None:
        used = [m for m in self.seed_means(metric) if np.isfinite(m)]
        return float(np.mean(used)) if used else None

    def seed_std(self, metric: str) -> float | None:
        used = [m for m in self.seed_means(metric) if np.isfinite(m)]
        return float(np.std(used, ddof=1)) if len(used) > 1 else None

    def matrix(self, metric: str) -> np.ndarray:
        """(seeds, subjects) matrix of per-subject means."""
        return stats.subject_matrix(self.values[metric], self.subjects)[0]

    def interval(self, metric: str) -> list[float] | None:
        if metric not in self.values:
            return None
        return stats.bootstrap_mean_ci(self.matrix(metric))


def _sort_key(config: Configuration) -> tuple:
    cp, cs = config.settings.get("lambda_cp", 0.0), config.settings.get("lambda_cs", 0.0)
    return (STAGES.index(config.stage), config.steps, MODEL_ORDER.index(config.model),
            list(DATA_VARIANTS).index(config.data), cp > 0 and cs > 0, cp == 0, cp, cs, config.label)


def group_records(records) -> list[Configuration]:
    """Configurations in display order (stage, budget, Table I order, then the ablation's order); each record's
    seeds are kept in seed order; a second record of the same run id (cannot happen from the command), or records of
    one task at different precisions, are an error."""
    configs: dict[tuple, Configuration] = {}
    seen, precisions = set(), {}
    for record in sorted(records, key=lambda r: (r["run"]["seed"], r.get("path", ""))):
        run: Run = run_of(record)
        if run.run_id in seen:
            raise ValueError(f"two records of run {run.run_id}")
        seen.add(run.run_id)
        precision = record.get("config", {}).get("precision")
        first = precisions.setdefault(run.task, (precision, run.run_id))
        if precision != first[0]:
            raise ValueError(f"{run.run_id} trained in {precision}, {first[1]} in {first[0]}: the runs of one task "
                             "are compared only at one precision")
        key = (run.task, run.stage, run.label, run.steps)
        if key not in configs:
            configs[key] = Configuration(run.task, run.stage, run.label, run.model, run.data, run.steps,
                                         dict(run.settings), list(record["subjects"]),
                                         list(record["evaluation"]["columns"]), store=run.store)
        config = configs[key]
        if list(record["subjects"]) != config.subjects:
            raise ValueError(f"{run.run_id}: evaluated on other slices than seed {config.seeds[0]} of {config.label}")
        config.seeds.append(run.seed)
        for metric in config.columns:
            config.values.setdefault(metric, []).append(decode_values(record["metrics"][metric]))
        config.curves.append((run.seed, record.get("curves") or []))
        config.gradients.append((run.seed, record.get("gradients") or []))
        config.step_s.append(record.get("provenance", {}).get("step_s_median"))
    return sorted(configs.values(), key=_sort_key)


def reference_of(configs: list[Configuration], config: Configuration) -> Configuration | None:
    """The configuration of ``configs`` that ``config`` is compared with: CycleGAN on the linear window with the
    same task and budget."""
    for other in configs:
        if (other.task, other.steps) == (config.task, config.steps) and other.model == "cyclegan" \
                and other.data == "linear":
            return other if other is not config else None
    return None


def difference(a: Configuration, b: Configuration, metric: str) -> dict | None:
    """Subject-level ``a - b`` with its 95% hierarchical-bootstrap interval (subjects paired, seeds resampled per
    configuration); None when they were evaluated on different slices or a metric is missing."""
    if a.subjects != b.subjects or metric not in a.values or metric not in b.values:
        return None
    return stats.bootstrap_difference(a.matrix(metric), b.matrix(metric))


def identity_configuration(reference: dict) -> Configuration:
    """A reference JSON's Identity row as a one-"seed" configuration (it does not depend on training)."""
    config = Configuration(reference["task"], "reference", "Identity (input copied)", "identity", reference["data"],
                           0, {}, list(reference["subjects"]), list(reference["columns"]), seeds=[0],
                           store=reference["store"])
    for metric in config.columns:
        config.values[metric] = [decode_values(reference["rows"]["Identity"][metric])]
    return config
