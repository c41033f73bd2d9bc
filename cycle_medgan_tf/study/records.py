"""The committed per-run JSONs of the study (``RESULTS/ID.json``) and the per-store reference JSONs
(``RESULTS/TASK/references/STORE_DATA.json``: the Identity row, which does not depend on training).

A run JSON holds ``"format"``, ``"version"``, ``"run"`` (the plan's record, :meth:`plan.Run.record`), the
configuration essentials, provenance (git commit, CPU model, times), the per-slice metric arrays with the subject
id of every slice, the learning-curve points and the final training losses: no checkpoint, no image. Non-finite
values are written as null and read back as NaN.
"""

from __future__ import annotations

import json
import os
from typing import Iterable

import numpy as np

from cycle_medgan_tf.atomic import atomic_write_text
from cycle_medgan_tf.study.plan import PlanError, Run

RUN_FORMAT = "cycle-medgan-study-run"
REFERENCE_FORMAT = "cycle-medgan-study-reference"
VERSION = 1
MAX_BYTES = 50_000            # a run JSON beyond this holds something it should not
SIGNIFICANT = 6               # digits kept per metric value


class StudyError(ValueError):
    """A problem with the study's inputs or committed records; the message is one line for the user."""


def record_path(results: str, run: Run) -> str:
    return os.path.join(results, *run.run_id.split("/")) + ".json"


def reference_path(results: str, task: str, store: str, data: str) -> str:
    return os.path.join(results, task, "references", f"{store}_{data}.json")


def encode_values(values) -> list:
    """Per-slice values as JSON numbers (``SIGNIFICANT`` digits), null where not finite."""
    return [float(f"{v:.{SIGNIFICANT}g}") if np.isfinite(v) else None for v in np.asarray(values, dtype=float)]


def decode_values(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def encode_rows(rows: dict) -> dict:
    return {key: encode_values(values) for key, values in rows.items()}


def read_json(path: str) -> dict:
    try:
        with open(path) as f:
            value = json.load(f)
    except (OSError, ValueError) as exc:
        raise StudyError(f"{path} is not a readable JSON file ({type(exc).__name__}); remove it or use --overwrite")
    if not isinstance(value, dict):
        raise StudyError(f"{path} holds no study record; remove it or use --overwrite")
    return value


def _difference(stored: dict, planned: dict) -> str:
    keys = sorted(set(stored) | set(planned), key=lambda k: (k not in planned, k))
    diff = [k for k in keys if stored.get(k) != planned.get(k)]
    return ", ".join(f"{k} {stored.get(k)!r} != planned {planned.get(k)!r}" for k in diff[:2])


def existing_record(results: str, run: Run, overwrite: bool) -> dict | None:
    """The finished record of ``run`` (reuse it), or None (train it). An existing JSON of another run is refused
    (:class:`StudyError`) unless ``overwrite``, in which case it will be replaced."""
    path = record_path(results, run)
    if not os.path.exists(path):
        return None
    try:
        record = read_json(path)
        stored = record.get("run") if record.get("format") == RUN_FORMAT else None
        if stored != run.record():
            what = _difference(stored, run.record()) if isinstance(stored, dict) else "no study run record"
            raise StudyError(f"{path} holds another run than the plan's ({what}); use --overwrite to replace it")
    except StudyError:
        if overwrite:
            return None
        raise
    return record


def write_json(path: str, value: dict, limit: int | None = MAX_BYTES) -> None:
    text = json.dumps(value, indent=1, sort_keys=False, allow_nan=False) + "\n"
    if limit is not None and len(text.encode()) > limit:
        raise StudyError(f"{path}: the record is {len(text.encode())} bytes, more than {limit}; refusing to write it")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write_text(path, text)


def _json_files(root: str) -> Iterable[str]:
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            if name.endswith(".json"):
                yield os.path.join(folder, name)


def load_records(results: str, kind: str = RUN_FORMAT) -> list[dict]:
    """Every record of ``kind`` under ``results`` (run or reference JSONs), in path order; other JSON files
    (e.g. the rendered ``choice.json``) are skipped."""
    if not os.path.isdir(results):
        raise StudyError(f"--results {results}: no such directory")
    records = []
    for path in _json_files(results):
        try:
            record = read_json(path)
        except StudyError:
            continue
        if record.get("format") == kind and record.get("version") == VERSION:
            records.append(dict(record, path=os.path.relpath(path, results)))
    return records


def run_of(record: dict) -> Run:
    """The :class:`plan.Run` a record describes."""
    r = record["run"]
    try:
        return Run(r["task"], r["stage"], r["store"], r["data"], r["model"], int(r["seed"]), int(r["steps"]),
                   r["profile"], tuple(sorted((k, float(v)) for k, v in r["settings"].items())))
    except (KeyError, TypeError, PlanError) as exc:
        raise StudyError(f"{record.get('path', 'a record')}: not a run of the study ({exc})") from None
