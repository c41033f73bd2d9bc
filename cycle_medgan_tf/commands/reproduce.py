"""Reproduce the paper's comparison: ``./run.sh reproduce [--profile=auto|smoke|quick|paper] [--seeds=0,1,2]``.

Runs the main job for both tasks (PET->CT and MR motion correction; every model once per seed), then writes
``RESULTS/table1.md`` with both halves of Table I beside the paper's numbers, each task's notes and subject-level
comparisons, ``RESULTS/fig3.png`` (both tasks' figures stacked) and ``RESULTS/reproduce.json`` (timings and the
per-task summaries). Per-seed tables stay in ``RESULTS/TASK/seeds/``.
"""

from __future__ import annotations

import json
import os
import sys
import time

from absl import flags

from cycle_medgan_tf.atomic import atomic_path, atomic_write_text
from cycle_medgan_tf.cli import fail, run_app
from cycle_medgan_tf.commands.main_job import (MODEL_ORDER, TASKS, choose_profile, define_seeds_flag, parse_seeds,
                                               run_job, user_errors)

FLAGS = flags.FLAGS


def define_flags() -> None:
    flags.DEFINE_enum("profile", "auto", ["auto", "smoke", "quick", "paper"],
                      "auto = paper with a GPU, quick without.")
    flags.DEFINE_string("results", "results", "Results root.")
    flags.DEFINE_integer("steps", None, "Override the profile's training steps for every model.", lower_bound=1)
    flags.DEFINE_bool("overwrite", False, "Start runs afresh when their configuration changed.")
    define_seeds_flag()


PAPER_LABELS = {"pet_ct": "PET->CT", "mr_motion": "MR motion"}
NOTE = ("The paper's data are private (46 PET/CT and 17 MR volunteers); these numbers come from the project's "
        "synthetic stand-ins under the profile named above, so only the ordering of the models is "
        "comparable with the paper, not the absolute values.")


def combined_markdown(results: list[dict], profile: str, seconds: float) -> str:
    from cycle_medgan_tf.evaluation.table import paper_reference, render_comparisons, render_markdown, render_notes

    table = render_markdown(results, paper_reference({r["task"]: PAPER_LABELS[r["task"]] for r in results}))
    parts = [f"# Table I (reproduction, profile `{profile}`)", table.rstrip("\n")]
    for r in results:
        notes = render_notes(r).strip() or (f"Mean ± std over the {r['n_slices']} validation slices; bold = best "
                                            "trained model.")
        parts.append(f"**{r['task']}**: {notes}")
    parts.append(f"(paper x) = the paper's Table I. Wall time {seconds / 60:.1f} min.")
    for r in results:
        if r.get("comparisons"):
            parts.append(f"## {r['task']}\n\n" + render_comparisons(r).rstrip("\n"))
    parts.append(NOTE)
    return "\n\n".join(parts) + "\n"


def stack_figures(paths: list[str], out: str) -> None:
    """Stack PNG figures vertically into one image."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.image as mpimg
    import numpy as np

    images = [mpimg.imread(p) for p in paths]
    width = max(i.shape[1] for i in images)
    padded = [np.pad(i, ((0, 0), (0, width - i.shape[1]), (0, 0)), constant_values=1.0) for i in images]
    with atomic_path(out, suffix=".png") as tmp:
        mpimg.imsave(tmp, np.concatenate(padded, axis=0))


def main(argv):
    from absl import logging

    from cycle_medgan_tf.evaluation.report import load_results

    logging.set_verbosity(logging.WARNING)
    profile = choose_profile(FLAGS.profile)
    seeds = parse_seeds(FLAGS.seeds, profile)
    t0 = time.monotonic()
    summaries, results = {}, []
    for task in TASKS:
        print(f"[reproduce] task {task}", file=sys.stderr, flush=True)
        try:
            summaries[task] = run_job(task, profile, FLAGS.results, list(MODEL_ORDER), steps=FLAGS.steps,
                                      overwrite=FLAGS.overwrite, seeds=seeds)
        except KeyboardInterrupt as exc:
            fail(f"interrupted ({exc}); run the same command again to continue", code=130)
        except user_errors() as exc:
            fail(f"{task}: {exc}")
        results.append(load_results(os.path.join(summaries[task]["results_dir"], "table1.json")))
    seconds = time.monotonic() - t0
    markdown = combined_markdown(results, profile, seconds)
    out = os.path.abspath(FLAGS.results)
    atomic_write_text(os.path.join(out, "table1.md"), markdown)
    stack_figures([os.path.join(summaries[t]["results_dir"], "fig3.png") for t in TASKS], os.path.join(out, "fig3.png"))
    atomic_write_text(os.path.join(out, "reproduce.json"),
                      json.dumps(dict(profile=profile, wall_time_s=round(seconds, 1), tasks=summaries), indent=2))
    print(markdown)
    print(f"[reproduce] done in {seconds / 60:.1f} min. Results: {out}/table1.md, {out}/fig3.png, {out}/reproduce.json")


def run() -> None:
    define_flags()
    run_app(main)


if __name__ == "__main__":
    run()
