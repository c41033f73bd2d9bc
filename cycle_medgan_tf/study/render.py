"""Render the study from its JSONs alone (no TensorFlow, no run directories): per task and stage
``TASK_STAGE.md`` (tables) and ``TASK_STAGE_curves.png`` (learning curves), and ``choice.json`` (the ablation's
choice per task by the rule of ``study/plan.py``)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os

from cycle_medgan_tf.atomic import atomic_write_text
from cycle_medgan_tf.study.choice import choose
from cycle_medgan_tf.study.gradients import render_gradient_shares
from cycle_medgan_tf.study.plan import STAGE_STORE, STAGES, TASKS
from cycle_medgan_tf.study.plots import render_stage_curves
from cycle_medgan_tf.study.records import REFERENCE_FORMAT, StudyError, load_records
from cycle_medgan_tf.study.summary import group_records, identity_configuration
from cycle_medgan_tf.study.tables import stage_markdown

CHOICE_FILE = "choice.json"
LOCK_FILE = ".render.lock"      # in the render target; not committed (.gitignore)


@contextlib.contextmanager
def _render_lock(out: str):
    """Serialise renders into ``out`` across processes (two studies of different tasks may share a results
    folder): the last render to take the lock reads every JSON written before it, so the files end up current."""
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, LOCK_FILE), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)      # released when the file is closed
        yield


def _references(results: str) -> tuple[list, dict]:
    """The Identity rows as configurations, and Identity's learning-curve scores by (task, store, data)."""
    records = load_records(results, REFERENCE_FORMAT)
    curves = {(r["task"], r["store"], r["data"]): r["curve_identity"]["scores"] for r in records
              if r.get("curve_identity")}
    return [identity_configuration(r) for r in records], curves


def render_study(results: str, out: str) -> list[str]:
    """Write every table, curve figure and ``choice.json`` of the records under ``results`` into ``out``;
    returns the paths written. Refuses (:class:`StudyError`) a results folder without any run record."""
    if not load_records(results):      # refused before ``out`` is created; read again under the lock below
        raise StudyError(f"--results {results}: no study run JSONs found")
    with _render_lock(out):
        return _render(results, out)


def _render(results: str, out: str) -> list[str]:
    records = load_records(results)
    try:
        configs = group_records(records)
    except ValueError as exc:
        raise StudyError(f"--results {results}: {exc}") from None
    references, curve_identity = _references(results)
    written, choices = [], {}
    for task in TASKS:
        if any(c.task == task and c.stage == "ablation" for c in configs):
            choices[task] = choose(task, configs)
        for stage in STAGES:
            group = [c for c in configs if c.task == task and c.stage == stage]
            if not group:
                continue
            if stage == "window":     # its linear-window CycleGAN is the ablation's
                budgets = {c.steps for c in group}
                group = [c for c in configs if c.task == task and c.stage == "ablation" and c.model == "cyclegan"
                         and c.steps in budgets] + group
            refs = [r for r in references if r.task == task and r.data in {c.data for c in group}
                    and r.store == STAGE_STORE[stage]]
            path = os.path.join(out, f"{task}_{stage}.md")
            atomic_write_text(path, stage_markdown(task, stage, group, refs, choices.get(task) if stage ==
                                                   "ablation" else None))
            written.append(path)
            figure = os.path.join(out, f"{task}_{stage}_curves.png")
            # recorded only where the curves draw it (study/execute.py, ``wants_curve_identity``)
            identity = curve_identity.get((task, STAGE_STORE[stage], "linear"))
            if render_stage_curves(figure, task, stage, group, identity):
                written.append(figure)
            figure = os.path.join(out, f"{task}_{stage}_gradients.png")
            if render_gradient_shares(figure, task, stage, group):
                written.append(figure)
    if choices:
        path = os.path.join(out, CHOICE_FILE)
        atomic_write_text(path, json.dumps(choices, indent=1) + "\n")
        written.append(path)
    return written
