"""The study's sittings: the plan of the requested stages, which runs are done (their JSON exists) and which
remain, the execution of the remaining ones (at most ``max_runs`` per sitting) and the re-rendering after each."""

from __future__ import annotations

import contextlib
import fcntl
import os
import statistics
from dataclasses import dataclass

from cycle_medgan_tf.study.choice import choose, final_weights
from cycle_medgan_tf.study.plan import Run, check_unique, stage_runs
from cycle_medgan_tf.study.records import existing_record, load_records, record_path, write_json
from cycle_medgan_tf.study.summary import group_records


@dataclass(frozen=True)
class StudyOptions:
    """What one invocation of the study does (the command's flags)."""

    task: str
    stages: tuple
    seeds: tuple
    steps: int
    long_steps: int
    profile: str
    results: str
    workdir: str
    max_runs: int | None = None
    overwrite: bool = False


def _records(results: str) -> list[dict]:
    return load_records(results) if os.path.isdir(results) else []


def final_choice(options: StudyOptions) -> tuple[dict, str]:
    """The ablation's choice at this budget and seeds, and the weights the final stage uses with their source."""
    records = [r for r in _records(options.results) if r["run"]["task"] == options.task]
    choice = choose(options.task, group_records(records), seeds=options.seeds, steps=options.steps)
    weights, source = final_weights(choice)
    return dict(choice, final=weights), source


def plan_stage(options: StudyOptions, stage: str) -> tuple[list[Run], str]:
    """The runs of one stage now (the final stage's Cycle-MedGAN weights depend on the ablation's records) and a
    note on where its settings come from."""
    weights, note = None, ""
    if stage == "final":
        choice, note = final_choice(options)
        weights = choice["final"]
    runs = stage_runs(options.task, stage, options.seeds, options.steps, options.profile,
                      long_steps=options.long_steps, weights=weights)
    if not runs:
        note = f"the {stage} stage has no runs for {options.task}"
    return runs, note


def full_plan(options: StudyOptions) -> list[tuple[str, list[Run], str]]:
    """Every requested stage's runs; a run shared by two stages (the window stage's CycleGAN is the ablation's)
    is listed in the first. Refuses a mismatched existing JSON (``StudyError``) unless ``overwrite``."""
    plan, seen = [], set()
    for stage in options.stages:
        runs, note = plan_stage(options, stage)
        check_unique(runs)
        plan.append((stage, [r for r in runs if r.run_id not in seen], note))
        seen.update(r.run_id for r in runs)
    for _, runs, _ in plan:
        for run in runs:
            existing_record(options.results, run, options.overwrite)
    return plan


def _estimates(options: StudyOptions) -> tuple[dict, float | None]:
    """Median seconds per step of each model and median evaluation seconds, from the existing records of the same
    profile (another profile's image size and batch make its step times meaningless here)."""
    per_model: dict[str, list] = {}
    evaluation = []
    for record in _records(options.results):
        if record["run"].get("profile") != options.profile:
            continue
        provenance = record.get("provenance", {})
        if provenance.get("step_s_median"):
            per_model.setdefault(record["run"]["model"], []).append(provenance["step_s_median"])
        if provenance.get("evaluate_s") is not None:
            evaluation.append(provenance["evaluate_s"])
    return ({m: statistics.median(v) for m, v in per_model.items()},
            statistics.median(evaluation) if evaluation else None)


def describe_plan(options: StudyOptions) -> str:
    """The ``--dry_run`` text: every planned run, done or to do, and a time estimate where one is known."""
    step_s, evaluate_s = _estimates(options)
    lines, total, unknown = [], 0.0, set()
    for stage, runs, note in full_plan(options):
        lines.append(f"[{stage}] {len(runs)} runs" + (f" ({note})" if note else ""))
        for run in runs:
            done = existing_record(options.results, run, options.overwrite) is not None
            lines.append(f"  {'done' if done else 'todo'}  {run.run_id}")
            if not done and run.model in step_s:
                total += step_s[run.model] * run.steps + (evaluate_s or 0.0)
            elif not done:
                unknown.add(run.model)
    todo = sum(line.startswith("  todo") for line in lines)
    estimate = f"about {total / 3600:.1f} h" if total else "no estimate"
    lines.append(f"{todo} runs to do; {estimate} from the step times of the existing {options.profile} records"
                 + (f" (no timing yet for {', '.join(sorted(unknown))})" if unknown else "")
                 + (f"; this sitting stops after {options.max_runs}" if options.max_runs else ""))
    return "\n".join(lines)


CLAIMS = ".claims"


@contextlib.contextmanager
def claim(workdir: str, run: Run):
    """Hold ``run`` for this process while it trains, so that two study processes of the same task (e.g. one per
    core, ``taskset -c 0`` and ``-c 1``) share the plan instead of training the same run twice. Yields False when
    another live process holds it; the claim is a ``flock`` on ``workdir/.claims/<run>.lock``, released when
    the process ends, however it ends."""
    folder = os.path.join(workdir, CLAIMS)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, run.run_id.replace("/", "__") + ".lock"), "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True


def _ablation_busy(options: StudyOptions) -> bool:
    """Whether another process is training an ablation run of this task's plan (one without a JSON)."""
    for run in stage_runs(options.task, "ablation", options.seeds, options.steps, options.profile):
        if existing_record(options.results, run, options.overwrite) is None:
            with claim(options.workdir, run) as mine:
                if not mine:
                    return True
    return False


def run_study(options: StudyOptions, execute, render=None, log=print, recorded=None, references=None) -> dict:
    """Train and record every planned run without a JSON (at most ``max_runs``), re-rendering after each.

    ``execute(run) -> record`` trains and evaluates one run (``study/execute.py``); ``recorded(run)`` is called
    once its JSON is written (the executor frees the run directory's checkpoints); ``references(run)`` completes
    the reference JSON of a run's store (called once per store of each stage, before its runs); ``render()``
    re-renders.
    Every existing JSON of the plan is checked first: one of another run is refused (``StudyError``) before
    anything is trained, unless ``overwrite``. A run another process has claimed (:func:`claim`) is left to it
    (``busy``)."""
    full_plan(options)          # refuses a mismatched JSON before any training
    summary = {"trained": [], "reused": [], "remaining": [], "busy": [], "notes": {}}
    seen = set()
    for stage in options.stages:
        runs, note = plan_stage(options, stage)     # again: the final stage's weights follow the ablation's records
        if note:
            summary["notes"][stage] = note
            log(f"[study] {stage}: {note}")
        # the final stage's Cycle-MedGAN weights are the ablation's choice: while another process still trains an
        # ablation run, they would be the defaults, so those runs wait for a later invocation
        if references is not None:
            for run in {(r.store, r.data): r for r in reversed(runs)}.values():
                references(run)
        upstream_busy = stage == "final" and (bool(summary["busy"]) or _ablation_busy(options))
        if upstream_busy:
            log("[study] final: another process is training an ablation run; Cycle-MedGAN's runs wait for the "
                "choice (run the same command again once it is recorded)")
        for run in runs:
            if run.run_id in seen:
                continue
            seen.add(run.run_id)
            if existing_record(options.results, run, options.overwrite) is not None:
                summary["reused"].append(run.run_id)
                continue
            if upstream_busy and run.model == "cycle_medgan":
                summary["remaining"].append(run.run_id)
                continue
            if options.max_runs is not None and len(summary["trained"]) >= options.max_runs:
                summary["remaining"].append(run.run_id)
                continue
            with claim(options.workdir, run) as mine:
                if not mine:
                    summary["busy"].append(run.run_id)
                    log(f"[study] {run.run_id}: another study process is training it; next run")
                    continue
                if existing_record(options.results, run, options.overwrite) is not None:   # finished meanwhile
                    summary["reused"].append(run.run_id)
                    continue
                record = execute(run)
                if note:
                    record["provenance"]["settings_source"] = note
                write_json(record_path(options.results, run), record)
            summary["trained"].append(run.run_id)
            log(f"[study] wrote {record_path(options.results, run)}")
            if recorded is not None:
                recorded(run)
            if render is not None:
                render()
    return summary
