"""Interleaved repeats of the training bench, for comparisons on a shared, noisy host.

``python -m cycle_medgan_tf.bench.sweep --configs="--model=cyclegan --size=128;--model=cycle_medgan --size=128"
--rounds=3 [--common="--steps=5"] [--raw=FILE]`` runs every configuration once per round, in order (A, B, A, B, ...),
each in a fresh process (``python -m cycle_medgan_tf.bench.train``), and prints one JSON line per configuration
with the median of each reported figure over the rounds (and the best step time), followed by a line of ratios of each
configuration's median step time to the first one's (``step_ratio_to_first``) computed per round, then medianed.
``--raw`` appends every single run's JSON line to a file.
"""

from __future__ import annotations

import json
import shlex
import statistics
import subprocess
import sys

from absl import flags

from cycle_medgan_tf.cli import fail, run_app

FLAGS = flags.FLAGS


def define_flags() -> None:
    """The command-line flags (defined only when run as a command, so that importing this module is free)."""
    flags.DEFINE_string("configs", None, "Semicolon-separated flag sets for cycle_medgan_tf.bench.train.")
    flags.DEFINE_string("common", "", "Flags added to every configuration.")
    flags.DEFINE_integer("rounds", 3, "Rounds (each runs every configuration once).")
    flags.DEFINE_string("raw", "", "Append each run's JSON line to this file.")
    flags.DEFINE_integer("timeout", 3600, "Seconds allowed per run.")


def run_one(args: list[str], timeout: int) -> dict:
    """One bench run in a fresh process; its JSON record."""
    result = subprocess.run([sys.executable, "-m", "cycle_medgan_tf.bench.train", *args], capture_output=True,
                            text=True, timeout=timeout)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"bench.train {' '.join(args)} failed (exit {result.returncode}): {tail}")
    return json.loads(lines[-1])


def summarise(records: list[dict]) -> dict:
    """The fields every record shares (the configuration), the median over ``records`` of every field that varies
    (the measurements), the best step time and the best interleaved fraction of the peak."""
    out = {}
    for key, value in records[0].items():
        values = [r[key] for r in records]
        varies = any(v != value for v in values)
        out[key] = round(statistics.median(values), 4) if varies else value
    out["step_s_best"] = min(r["step_s_min"] for r in records)
    out["fraction_of_peak_interleaved_best"] = max(r["fraction_of_peak_interleaved"] for r in records)
    out["rounds"] = len(records)
    return out


def main(argv):
    del argv
    if not FLAGS.configs:
        fail("--configs is required (semicolon-separated flag sets)")
    configs = [shlex.split(c) + shlex.split(FLAGS.common) for c in FLAGS.configs.split(";") if c.strip()]
    if FLAGS.rounds < 1:
        fail("--rounds must be >= 1")
    runs: list[list[dict]] = [[] for _ in configs]
    for _ in range(FLAGS.rounds):
        for i, args in enumerate(configs):
            try:
                record = run_one(args, FLAGS.timeout)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                fail(str(exc))
            record["args"] = " ".join(args)
            runs[i].append(record)
            if FLAGS.raw:
                with open(FLAGS.raw, "a") as f:
                    f.write(json.dumps(record) + "\n")
    for records in runs:
        print(json.dumps(summarise(records)))
    ratios = {runs[i][0]["args"]: round(statistics.median(
        r["step_s_median"] / first["step_s_median"] for r, first in zip(runs[i], runs[0])), 3)
        for i in range(1, len(runs))}
    print(json.dumps({"step_ratio_to_first": ratios, "first": runs[0][0]["args"]}))


if __name__ == "__main__":
    define_flags()
    run_app(main)
